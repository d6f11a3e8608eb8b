"""squawk over pending migrations (issue 18, part 2): the real squawk-cli binary of the venv, lines made
1-based, the app's .squawk.toml honoured and merged with the rules the project switches off, failures in
one line."""

from __future__ import annotations

import pytest
from sql_lint import PROJECT_EXCLUDED, SqlLintError, lint_migrations, merged_config

INDEX = 'CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");\n'
FK = (
    "-- AddForeignKey\n"
    'ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id");\n'
)


def rules(result) -> set:
    return {(f["migration"], f["line"], f["rule"]) for f in result["findings"]}


def test_findings_name_the_migration_and_the_1_based_line():
    result = lint_migrations({"20240301090000_index": INDEX, "20240302090000_fk": FK}, pg_version="15")
    assert rules(result) == {
        ("20240301090000_index", 1, "require-concurrent-index-creation"),
        ("20240302090000_fk", 2, "constraint-missing-not-valid"),
        ("20240302090000_fk", 2, "adding-foreign-key-constraint"),
    }
    [index] = [f for f in result["findings"] if f["rule"] == "require-concurrent-index-creation"]
    assert index["link"] == "https://squawkhq.com/docs/require-concurrent-index-creation"
    assert "concurrently" in index["help"].lower()
    assert result["squawk"].startswith("squawk")


def test_the_project_switches_off_what_the_playbook_already_does():
    result = lint_migrations({"m": INDEX})
    assert set(PROJECT_EXCLUDED) <= set(result["excluded_rules"])
    assert not {f["rule"] for f in result["findings"]} & set(PROJECT_EXCLUDED)


def test_the_apps_squawk_toml_is_honoured_and_merged():
    app = 'excluded_rules = ["require-concurrent-index-creation"]\npg_version = "15.0"\n'
    result = lint_migrations({"m": INDEX + FK}, app_config=app)
    assert "require-concurrent-index-creation" not in {f["rule"] for f in result["findings"]}
    assert "adding-foreign-key-constraint" in {f["rule"] for f in result["findings"]}
    assert result["excluded_rules"][0] == "require-concurrent-index-creation"
    text, excluded = merged_config(app)
    assert 'pg_version = "15.0"' in text
    assert excluded == ["require-concurrent-index-creation", *PROJECT_EXCLUDED]


def test_a_clean_migration_has_no_findings_and_a_name_with_anything_in_it_is_kept():
    name = "20240303090000_add space/and'quote"
    result = lint_migrations({name: 'ALTER TABLE "Post" ADD COLUMN "note" TEXT;\n'})
    assert result["findings"] == []
    broken = lint_migrations({name: "SELEC 1;\n"})
    assert {f["migration"] for f in broken["findings"]} == {name}
    assert {f["rule"] for f in broken["findings"]} == {"syntax-error"}
    assert all(f["link"] == "" for f in broken["findings"])


def test_bad_input_is_one_line():
    with pytest.raises(SqlLintError, match=r"^the app's \.squawk\.toml is not valid TOML \(.*\): fix it or remove it$"):
        lint_migrations({"m": INDEX}, app_config="excluded_rules = [")
    with pytest.raises(SqlLintError, match=r"^squawk did not run \(.*\): check 'make setup'$"):
        lint_migrations({"m": INDEX}, squawk="/nonexistent/squawk")


def test_no_migrations_no_run():
    assert lint_migrations({})["findings"] == []
