from __future__ import annotations

import pytest
from prisma_cli import PrismaCliError, first_error_line, resolve_executable


class HostWithoutPrisma:
    def get_bin_path(self, name, required=False):
        return None


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_checkout_s_own_prisma_wins_over_one_on_the_path(tmp_path):
    own = executable(tmp_path / "app" / "node_modules" / ".bin" / "prisma")
    other = executable(tmp_path / "global" / "prisma")
    found = resolve_executable(
        HostWithoutPrisma(), ["prisma"], str(tmp_path / "app"), {"PATH": str(tmp_path / "global")}
    )
    assert found == own != other


def test_a_package_runner_is_found_on_the_path(tmp_path):
    pnpm = executable(tmp_path / "bin" / "pnpm")
    (tmp_path / "app").mkdir()
    assert (
        resolve_executable(HostWithoutPrisma(), ["pnpm"], str(tmp_path / "app"), {"PATH": str(tmp_path / "bin")})
        == pnpm
    )


def test_a_missing_prisma_says_where_it_looked_and_what_to_do(tmp_path):
    (tmp_path / "app").mkdir()
    with pytest.raises(PrismaCliError) as exc:
        resolve_executable(HostWithoutPrisma(), ["prisma"], str(tmp_path / "app"), {"PATH": str(tmp_path)})
    assert f"{tmp_path / 'app'}/node_modules/.bin" in str(exc.value)
    assert "pnpm install" in str(exc.value)
    assert "\n" not in str(exc.value)


VALIDATE_OUTPUT = """Prisma schema loaded from prisma/schema.prisma
Error: Prisma schema validation - (validate wasm)
Error code: P1012
\x1b[1;91merror\x1b[0m: \x1b[1mType "Nowhere" is neither a built-in type, nor refers to another model.\x1b[0m
  \x1b[1;94m-->\x1b[0m  \x1b[4mprisma/schema.prisma:60\x1b[0m

Validation Error Count: 1
"""


def test_a_schema_error_is_named_with_its_file_and_line():
    assert first_error_line("", VALIDATE_OUTPUT, 1) == (
        'Type "Nowhere" is neither a built-in type, nor refers to another model. (prisma/schema.prisma:60)'
    )


def test_otherwise_the_first_error_line_or_the_exit_code():
    assert first_error_line("ok\n", "npm warn x\nError: P1001 cannot reach\n", 1) == "Error: P1001 cannot reach"
    assert first_error_line("", "", 3) == "exit 3"
