"""Issue 16 (trust defects), classes D and G, against the test cluster.

D: a role whose password holds every character a URL gives a meaning to (@ : / ? # % + and a
space), correctly percent-encoded in its URL, migrated through migrate.yml: neither the password,
its encoded form, nor any 6-character piece of them appears in stdout, stderr, a report or a
snapshot manifest.

G: two tenants' schemas in one database share a backup_dir with keep=1: each keeps its own
snapshot, and latest for one tenant never returns the other's.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from urllib.parse import quote

from ansible_run import run_tasks
from pgcluster import Database
from playbook_target import PHRASE, make_target
from prismaapp import MIGRATIONS

SPECIALS = "@:/?#%+ "


def random_password(seed: str) -> str:
    """Upper- and lower-case letters in turn (so no piece reads as hex or a word), with every special
    character spread through it; seeded by the test's name, reproducible."""
    rng = random.Random(zlib.crc32(seed.encode()))  # noqa: S311 (reproducible test data)
    upper, lower = "ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnpqrstuvwxyz"
    chars = []
    for special in SPECIALS:
        chars += [rng.choice(upper), rng.choice(lower), rng.choice(upper), special]
    return "".join(chars) + rng.choice(upper) + rng.choice(lower)


def pieces(password: str) -> set[str]:
    """The password, its URL-encoded form and every 6-character piece of either."""
    encoded = quote(password, safe="")
    found = {password, encoded}
    for value in (password, encoded):
        found |= {value[i : i + 6] for i in range(len(value) - 5)}
    return found


@dataclass
class RoleDatabase(Database):
    """A database owned by its own role, with its own password."""

    secret: str = ""

    @property
    def password(self) -> str:
        return self.secret


def test_a_password_with_every_special_character_never_leaves(tmp_path, pg_cluster, request):
    password = random_password(request.node.name)
    role = f"tenant_{zlib.crc32(request.node.name.encode()) % 100000}"
    pg_cluster.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    name = f"secret_{role}"
    pg_cluster.psql(f"CREATE DATABASE \"{name}\" OWNER {role} TEMPLATE template0 ENCODING 'UTF8'")
    db = RoleDatabase(pg_cluster, name, user=role, secret=password)
    try:
        assert quote(password, safe="") in db.url()
        target = make_target(tmp_path, db)
        run = target.run({"confirm": PHRASE})
        assert run.rc == 0, run.stdout[-4000:]
        assert target.applied() == MIGRATIONS
        assert run.report["result"] == "migrated"

        texts = {"stdout": run.stdout, "stderr": run.stderr}
        files = [p for p in target.report_dir.rglob("*") if p.is_file()]
        files += list(target.backup_dir.glob("*.manifest.json"))
        assert any(p.name.endswith(".manifest.json") for p in files)
        assert any(p.name.endswith(".json") and p.parent == target.report_dir for p in files)
        for path in files:
            texts[str(path)] = path.read_text(errors="replace")
        leaks = {where: sorted(p for p in pieces(password) if p in text) for where, text in texts.items()}
        assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
    finally:
        pg_cluster.drop_database(name)
        pg_cluster.psql(f"DROP ROLE IF EXISTS {role}")


def snapshot(name: str, url_var: str, backups: str, keep: int = 1) -> dict:
    args = {"database_url": f"{{{{ lookup('env', '{url_var}') }}}}", "dest_dir": backups, "keep": keep}
    return {"name": name, "prisma_snapshot": args}


def latest(name: str, url_var: str, backups: str) -> dict:
    args = {"database_url": f"{{{{ lookup('env', '{url_var}') }}}}", "backup_dir": backups}
    return {"name": name, "prisma_snapshot_info": args, "ignore_errors": True}


PAUSE = {"name": "Next second", "ansible.builtin.wait_for": {"timeout": 1}}  # snapshot names have seconds


def test_two_tenants_in_one_database_keep_their_own_snapshots(tmp_path, database):
    for schema in ("tenant_a", "tenant_b"):
        database.execute(
            f"CREATE SCHEMA {schema} AUTHORIZATION app; CREATE TABLE {schema}.items (id int);"
            f" ALTER TABLE {schema}.items OWNER TO app; INSERT INTO {schema}.items VALUES (1)"
        )
    base = database.url(prisma=False)
    env = {"URL_A": base + "?schema=tenant_a", "URL_B": base + "?schema=tenant_b"}
    backups = str(tmp_path / "backups")
    out = run_tasks(
        tmp_path,
        [
            snapshot("a1", "URL_A", backups),
            snapshot("b1", "URL_B", backups),
            latest("latest a after b1", "URL_A", backups),
            PAUSE,
            snapshot("a2", "URL_A", backups),
            snapshot("b2", "URL_B", backups),
            latest("latest a", "URL_A", backups),
            latest("latest b", "URL_B", backups),
        ],
        env=env,
    )
    assert out.rc == 0, out.stdout[-3000:]
    assert database.password not in out.stdout
    for step in ("a1", "b1", "a2", "b2"):
        assert out[step]["changed"], out[step].get("msg")
    # keep=1 per schema: b1 removed nothing of tenant_a, a2 removed only a1, b2 only b1.
    assert out["b1"]["removed"] == []
    assert out["a2"]["removed"] == [out["a1"]["manifest"]["file"]]
    assert out["b2"]["removed"] == [out["b1"]["manifest"]["file"]]
    assert out["a1"]["manifest"]["schema"] == "tenant_a"
    assert out["b1"]["manifest"]["schema"] == "tenant_b"
    # latest for tenant_a is tenant_a's, even when tenant_b's is newer.
    assert out["latest a after b1"]["path"] == out["a1"]["path"]
    assert out["latest a"]["path"] == out["a2"]["path"]
    assert out["latest b"]["path"] == out["b2"]["path"]
    for key in ("latest a after b1", "latest a", "latest b"):
        assert not out[key].get("failed"), out[key].get("msg")
    left = sorted(p.name for p in (tmp_path / "backups").iterdir() if not p.name.endswith(".manifest.json"))
    assert left == sorted([out["a2"]["manifest"]["file"], out["b2"]["manifest"]["file"]])
