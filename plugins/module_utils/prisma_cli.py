"""Run a Prisma CLI command from an Ansible module (shared by the modules).

Imports nothing from Ansible: it is handed the ``AnsibleModule`` and only
calls its public methods, so it is importable in plain unit tests too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time

try:
    from ansible.module_utils.prisma_url import env_secrets, redact, url_secrets
except ImportError:  # unit tests import the file directly
    from prisma_url import env_secrets, redact, url_secrets

RC_TIMEOUT = 124  # coreutils timeout(1)
RC_NOT_FOUND = 127


class PrismaCliError(Exception):
    """A problem with the inputs or the host, with a message for the operator."""


def split_command(command: str | list) -> list[str]:
    if isinstance(command, list):
        argv = [str(a) for a in command]
    else:
        try:
            argv = shlex.split(command or "")
        except ValueError as exc:
            raise PrismaCliError(f"command {command!r} cannot be split into arguments: {exc}") from None
    if not argv:
        raise PrismaCliError(
            "command is empty: give the Prisma command, e.g. 'prisma' (the checkout's own) or 'pnpm exec prisma'"
        )
    return argv


def check_project(project_dir: str, schema: str | None = None) -> str:
    """Return the migrations folder after checking the project is usable."""
    if not project_dir:
        raise PrismaCliError("project_dir is empty: set it to the app checkout holding package.json and prisma/")
    if not os.path.isdir(project_dir):
        raise PrismaCliError(
            f"project_dir {project_dir} does not exist or is not a directory on this host:"
            " set prisma_project_dir to the app checkout"
        )
    if schema:
        schema_path = schema if os.path.isabs(schema) else os.path.join(project_dir, schema)
        if not os.path.isfile(schema_path):
            raise PrismaCliError(f"schema {schema_path} does not exist: fix the schema option or leave it unset")
        migrations = os.path.join(os.path.dirname(schema_path), "migrations")
    else:
        migrations = os.path.join(project_dir, "prisma", "migrations")
    if not os.path.isdir(migrations):
        raise PrismaCliError(
            f"no migrations folder at {migrations}: is {project_dir} the app checkout (package.json and prisma/)?"
        )
    return migrations


# The Prisma CLI majors this project runs: 7 (primary) and 6 are tested on every `make test`; 5 reads the
# same output (untested). 8 has no `migrate deploy` (its `db migrate` and `migration status --json` replace it).
SUPPORTED_MAJORS = (5, 6, 7)
TESTED_MAJORS = (6, 7)


def prisma_version(project_dir: str) -> dict:
    """The Prisma CLI version the checkout installed, read from ``node_modules/prisma/package.json``
    (no process started): ``version``, ``major``, ``path``, ``supported``, ``tested``, ``config_file`` (the
    Prisma config file the CLI would load, or None) and a one-line ``msg`` that says what to do when the
    version is not supported (or cannot be read)."""
    path = os.path.join(project_dir, "node_modules", "prisma", "package.json")
    found = {"version": None, "major": None, "path": path, "supported": False, "tested": False, "msg": ""}
    found["config_file"] = prisma_config_file(project_dir)
    try:
        with open(path, encoding="utf-8") as fh:
            version = json.load(fh).get("version")
    except (OSError, ValueError, AttributeError):
        version = None
    match = re.match(r"^(\d+)\.\d+\.\d+", version) if isinstance(version, str) else None
    if not match:
        found["msg"] = (
            f"cannot tell which Prisma CLI the checkout runs: {path} is missing or has no version -"
            " install the app's node packages in the checkout (npm ci) before migrating"
        )
        return found
    major = int(match.group(1))
    found.update(version=version, major=major, supported=major in SUPPORTED_MAJORS, tested=major in TESTED_MAJORS)
    if major >= 8:
        found["msg"] = (
            f"the checkout runs Prisma {version}, which has no 'migrate deploy' (Prisma 8 migrates with"
            " 'prisma db migrate'): pin prisma@7 in the app's package.json, or migrate with Prisma 8's own tools"
        )
    elif major < 5:
        found["msg"] = (
            f"the checkout runs Prisma {version}, older than this project supports (5 to 7, tested on 6 and 7):"
            " upgrade the app to prisma@7 (or 6)"
        )
    return found


# Where Prisma 7 looks for its config file in the folder it runs in, in its order (@prisma/config 7.10.1,
# loadConfigFromFile: PRISMA7_CONFIG_FILE_CANDIDATES, then the legacy ones), unless --config names one.
_CONFIG_EXTENSIONS = (".js", ".ts", ".mjs", ".cjs", ".mts", ".cts")
CONFIG_FILE_CANDIDATES = tuple(
    [f"prisma7.config{ext}" for ext in _CONFIG_EXTENSIONS]
    + [os.path.join(".config", f"prisma7{ext}") for ext in _CONFIG_EXTENSIONS]
    + [
        candidate
        for base in ("prisma.config", os.path.join(".config", "prisma"), os.path.join(".config", "prisma.config"))
        for candidate in [base + ext for ext in _CONFIG_EXTENSIONS]
        + [os.path.join(base, "index" + ext) for ext in _CONFIG_EXTENSIONS]
    ]
)


def prisma_config_file(project_dir: str) -> str | None:
    """The Prisma config file the CLI loads when it runs in ``project_dir`` without --config, or None."""
    for candidate in CONFIG_FILE_CANDIDATES:
        path = os.path.join(project_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def config_problem(version: dict, project_dir: str, command) -> str:
    """One line when the checkout's Prisma cannot be reading the playbook's URL because it has no config file:
    Prisma 7 takes the datasource URL only from its config file (schema.prisma may not hold it, .env is not
    loaded). Empty when there is one, when the command names one (--config), or before Prisma 7."""
    if not version.get("major") or version["major"] < 7:
        return ""
    argv = split_command(command) if command else []
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv):
        return ""
    if prisma_config_file(project_dir):
        return ""
    return (
        f"the checkout runs Prisma {version['version']} and has no prisma.config.ts in {project_dir}:"
        " Prisma 7 reads the datasource URL only from its config file - add prisma.config.ts with"
        " datasource: { url: env('DATABASE_URL') } (the playbook sets DATABASE_URL), or name the file"
        " with --config in prisma_command"
    )


def resolve_executable(module, argv: list[str], project_dir: str, environment: dict) -> str:
    """Find argv[0] as pnpm exec and npx would: the checkout's node_modules/.bin
    first (its own Prisma, whatever else is installed), then the PATH the
    command will see, then the host's PATH."""
    exe = argv[0]
    if os.sep in exe:
        path = exe if os.path.isabs(exe) else os.path.join(project_dir, exe)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise PrismaCliError(f"Prisma command {exe} is not an executable file: fix prisma_command")
    search = environment.get("PATH") or os.environ.get("PATH", "")
    dirs = [os.path.join(project_dir, "node_modules", ".bin"), *search.split(os.pathsep)]
    for d in dirs:
        candidate = os.path.join(d, exe)
        if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = module.get_bin_path(exe, required=False)
    if found:
        return found
    raise PrismaCliError(
        f"Prisma command '{exe}' was not found in {project_dir}/node_modules/.bin or on the PATH (exit 127):"
        " install the app's dependencies (pnpm install), or set prisma_command (e.g. 'pnpm exec prisma')"
    )


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_error_line(stdout: str, stderr: str, rc) -> str:
    """The line of a failed command's output an operator should read first: a
    schema error with its file and line when Prisma printed one, else the
    first Error line."""
    lines = [ANSI.sub("", ln).strip() for ln in (stderr + "\n" + stdout).splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("error:"):  # the schema validator: "error: <what>" then "-->  file:line"
            where = next((ln[3:].strip() for ln in lines[i + 1 : i + 3] if ln.startswith("-->")), "")
            return line[6:].strip() + (f" ({where})" if where else "")
    return next((ln for ln in lines if ln.startswith(("Error", "error"))), None) or next(
        (ln for ln in lines if ln and "npm warn" not in ln), f"exit {rc}"
    )


def _prepare(module, command, args, project_dir, environment, database_url, timeout):
    """The full argv (under coreutils timeout), the added environment, and the argv to show."""
    environment = {str(k): str(v) for k, v in (environment or {}).items()}
    argv = split_command(command)
    argv[0] = resolve_executable(module, argv, project_dir, environment)
    argv = argv + list(args)
    full = argv
    if timeout:
        timeout_bin = module.get_bin_path("timeout", required=False)
        if not timeout_bin:
            raise PrismaCliError("coreutils 'timeout' is missing on this host: install coreutils or set timeout to 0")
        full = [timeout_bin, "--kill-after=10", str(int(timeout)), *argv]
    env = dict(environment)
    # prisma_env's secrets (DIRECT_URL, a shadow URL, *PASSWORD*, *SECRET*, *TOKEN*): masked in
    # everything the module returns, its invocation included, and removed from Prisma's output.
    hide_from_result(module, env_secrets(environment))
    if database_url:
        env["DATABASE_URL"] = database_url
    env.setdefault("CHECKPOINT_DISABLE", "1")  # no telemetry call from production hosts
    env.setdefault("PRISMA_HIDE_UPDATE_MESSAGE", "1")
    env.setdefault("NO_COLOR", "1")
    return full, env, argv


def hide_from_result(module, secrets) -> None:
    """Ansible masks these values (and a URL's password) wherever they occur in the module's result,
    invocation included. Values under 4 characters are left to redact() (Ansible would mask every
    occurrence of them, inside other words too)."""
    no_log = getattr(module, "no_log_values", None)
    if isinstance(no_log, set):
        values = set()
        for secret in secrets:
            values |= {secret, *url_secrets(secret)} if "://" in secret else {secret}
        no_log.update(v for v in values if len(v) >= 4)


def scrub(text: str, environment: dict | None, database_url: str | None = None) -> str:
    """Prisma's output without the URL's password nor any secret of ``environment``."""
    return redact(text, database_url, *env_secrets(environment))


def run_prisma(module, *, command, args, project_dir, environment=None, database_url=None, timeout=None):
    """Run ``command args…`` in project_dir. Returns (rc, stdout, stderr, argv).

    The database URL travels only in the child's environment. A timeout is
    enforced with coreutils ``timeout`` (exit 124), which then kills the
    whole command.
    """
    full, env, argv = _prepare(module, command, args, project_dir, environment, database_url, timeout)
    rc, out, err = module.run_command(full, cwd=project_dir, environ_update=env, check_rc=False)
    return rc, scrub(out, environment, database_url), scrub(err, environment, database_url), argv


class SideBySide:
    """A read-only Prisma command started now and collected later, so that it
    runs while the module runs another one (two Node start-ups overlap on a
    host with two cores or more). Output goes to unnamed temporary files: no
    pipe can fill up while nobody reads it."""

    def __init__(self, module, *, command, args, project_dir, environment=None, database_url=None, timeout=None):
        full, env, self.argv = _prepare(module, command, args, project_dir, environment, database_url, timeout)
        self._secrets = (environment, database_url)
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self._start = time.monotonic()
        self._proc = subprocess.Popen(  # noqa: S603 (argv, no shell)
            full,
            cwd=project_dir,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,  # its own process group: stop() reaches Node under any wrapper
        )

    def _signal_group(self, sig):
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the whole group has ended

    def stop(self):
        """Stop it and everything it started (timeout, npx or pnpm, Node), and wait for it."""
        if self._out.closed:
            return  # stopped or collected already: its process group may be gone and its id reused
        self._signal_group(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
        for handle in (self._out, self._err):
            handle.close()

    def collect(self):
        """Wait for it; return (rc, stdout, stderr, seconds)."""
        rc = self._proc.wait()
        seconds = round(time.monotonic() - self._start, 3)
        texts = []
        for handle in (self._out, self._err):
            handle.seek(0)
            texts.append(scrub(handle.read().decode("utf-8", errors="replace"), *self._secrets))
            handle.close()
        return rc, texts[0], texts[1], seconds


class StatusRun:
    """``prisma migrate status``, and with validate ``prisma validate``, started
    side by side now and read later: a module reads the database meanwhile, so
    its own work hides behind Node's start-up."""

    def __init__(self, module, *, command, project_dir, schema=None, environment=None, database_url=None,
                 timeout=None, validate=False):  # fmt: skip
        common = {
            "command": command,
            "project_dir": project_dir,
            "environment": environment,
            "database_url": database_url,
            "timeout": timeout,
        }
        extra = ["--schema", schema] if schema else []
        self.timeout = timeout
        self.validation = SideBySide(module, args=["validate", *extra], **common) if validate else None
        try:
            self.status = SideBySide(module, args=["migrate", "status", *extra], **common)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for run in (self.validation, getattr(self, "status", None)):
            if run:
                run.stop()

    def collect(self, parse, redact):
        """Wait for both; return (facts, problem). facts holds what prisma_migrate_info
        returns (the parser's fields with failed as failed_migrations, command_rc,
        stdout, stderr, cmd, duration_s, validation); problem is the one-line
        reason to fail, or None. parse is parse_migrate_status; redact removes
        the password from a text."""
        rc, out, err, seconds = self.status.collect()
        facts = {"command_rc": rc, "stdout": redact(out), "stderr": redact(err), "cmd": self.status.argv}
        facts.update(duration_s=seconds, validation={})
        facts.update(parse(out + "\n" + err, rc))
        facts["failed_migrations"] = facts.pop("failed")
        for key in ("error_message", "summary"):
            facts[key] = redact(facts[key]) if facts[key] else facts[key]
        problem = None
        if self.validation:
            v_rc, v_out, v_err, v_seconds = self.validation.collect()
            v_out, v_err = redact(v_out), redact(v_err)
            facts["validation"] = {
                "command_rc": v_rc,
                "duration_s": v_seconds,
                "stdout": v_out,
                "stderr": v_err,
                "cmd": self.validation.argv,
                "msg": f"prisma validate succeeded in {v_seconds} s"
                if v_rc == 0
                else f"prisma validate failed (exit {v_rc}): {first_error_line(v_out, v_err, v_rc)}",
            }
            if v_rc != 0:
                problem = (
                    f"{facts['validation']['msg']} - the release's Prisma schema is invalid: fix it (or deploy the"
                    " right release) before migrating"
                )
        if problem is None and rc == RC_TIMEOUT and self.timeout:
            problem = (
                f"prisma migrate status did not finish within {self.timeout} s: check that the database is reachable"
                " from this host (firewall, DNS) or raise the timeout"
            )
        elif problem is None and rc == RC_NOT_FOUND:
            first = next((ln.strip() for ln in facts["stderr"].splitlines() if ln.strip()), "no output")
            problem = f"the Prisma command failed with exit 127 (not found): {first[:200]}"
        return facts, problem
