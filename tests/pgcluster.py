"""Throwaway PostgreSQL 15 clusters for the tests.

A cluster lives in a fresh temporary directory, listens on 127.0.0.1 on a free
port and on a private socket directory, and uses password authentication
(scram-sha-256) for every connection, so the tests exercise real auth.
``initdb`` refuses to run as root: as root the server runs as the ``postgres``
system user (created by Debian's postgresql package); otherwise as the caller.
Nothing here ever touches a cluster the tests did not start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
APP_ROLE = "app"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as_user() -> str | None:
    """The OS user to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "running as root but there is no 'postgres' user to run initdb as; "
            "run 'make setup' (it installs Debian's postgresql package)"
        ) from exc
    return "postgres"


@dataclass
class Database:
    """One database in a cluster, with the application role's credentials."""

    cluster: PgCluster
    name: str
    user: str = APP_ROLE

    @property
    def password(self) -> str:
        return self.cluster.app_password

    def url(self, *, prisma: bool = True, password: str | None = None) -> str:
        pw = quote(self.password if password is None else password, safe="")
        url = f"postgresql://{self.user}:{pw}@127.0.0.1:{self.cluster.port}/{self.name}"
        return url + ("?schema=public" if prisma else "")

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.cluster.port,
            dbname=self.name,
            user=self.cluster.superuser,
            password=self.cluster.superuser_password,
        )

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple = ()) -> None:
        self.query(sql, params)


@dataclass
class PgCluster:
    """A running throwaway cluster; use as a context manager or start()/stop()."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgtest-")))
    port: int = 0
    superuser: str = SUPERUSER
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    app_password: str = field(default_factory=lambda: "app-" + secrets.token_urlsafe(18))
    os_user: str | None = field(default_factory=_run_as_user)
    # TLS (optional): the server's certificate and key (PEM), and the CA that signs client certificates
    # (ssl_ca_file, for clientcert= in hba_lines). Copied into the cluster's folder; ssl=on when given.
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_ca_file: Path | None = None
    # pg_hba.conf lines put before initdb's own (the first match wins).
    hba_lines: tuple[str, ...] = ()
    # postgresql.conf lines appended after initdb's (the last setting wins), e.g. archive_command
    conf_lines: tuple[str, ...] = ()
    _counter: int = 0

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    def _cmd(self, *argv: str) -> list[str]:
        if self.os_user:
            return ["runuser", "-u", self.os_user, "--", *argv]
        return list(argv)

    def _chown(self, path: Path) -> None:
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def admin_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.superuser_password
        return env

    def start(self) -> PgCluster:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(f"{PG_BIN}/initdb not found; run 'make setup' to install postgresql-15")
        self.base.chmod(0o755)
        self._chown(self.base)
        self.socket_dir.mkdir()
        self._chown(self.socket_dir)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        subprocess.run(
            self._cmd(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        self._configure_tls_and_hba()
        for attempt in range(5):
            self.port = _free_port()
            proc = self._pg_ctl_start()
            if proc.returncode == 0:
                break
            if attempt == 4:
                log = (self.base / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log}")
        self.psql(f"CREATE ROLE {APP_ROLE} LOGIN CREATEDB PASSWORD '{self.app_password}'")
        return self

    @property
    def ssl_dir(self) -> Path:
        return self.base / "ssl"

    def _configure_tls_and_hba(self) -> None:
        if self.ssl_cert_file or self.ssl_key_file:
            self.ssl_dir.mkdir(mode=0o700)
            self._chown(self.ssl_dir)
            for source, name in ((self.ssl_cert_file, "server.crt"), (self.ssl_key_file, "server.key"),
                                 (self.ssl_ca_file, "ca.crt")):  # fmt: skip
                if source:
                    target = self.ssl_dir / name
                    shutil.copyfile(source, target)
                    target.chmod(0o600)
                    self._chown(target)
        if self.hba_lines:
            hba = self.data_dir / "pg_hba.conf"
            hba.write_text("\n".join(self.hba_lines) + "\n" + hba.read_text())
        if self.conf_lines:
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write("\n".join(self.conf_lines) + "\n")

    def _server_options(self) -> str:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        if self.ssl_cert_file or self.ssl_key_file:
            options += f" -c ssl=on -c ssl_cert_file={self.ssl_dir / 'server.crt'} -c ssl_key_file={self.ssl_dir / 'server.key'}"
            if self.ssl_ca_file:
                options += f" -c ssl_ca_file={self.ssl_dir / 'ca.crt'}"
        return options

    def _pg_ctl_start(self):
        return subprocess.run(
            self._cmd(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.base / "server.log"),
                "-w",
                "-t",
                "30",
                "-o",
                self._server_options(),
                "start",
            ),
            capture_output=True,
            text=True,
        )

    def crash(self) -> None:
        """Stop the server the way a crash does (immediate mode: no checkpoint, sessions cut)."""
        subprocess.run(
            self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            check=True,
            timeout=60,
        )

    def start_again(self) -> None:
        """Start the server again on the same port after crash() (crash recovery runs)."""
        proc = self._pg_ctl_start()
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr}")

    @property
    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        return None

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            env=self.admin_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str | None = None, template: str = "template0") -> Database:
        """A new database owned by the app role; ``template`` copies another database (no session may use it)."""
        self._counter += 1
        name = name or f"app_{self._counter}_{secrets.token_hex(3)}"
        self.psql(f'CREATE DATABASE "{name}" OWNER {APP_ROLE} TEMPLATE "{template}" ENCODING \'UTF8\'')
        return Database(self, name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete every file of the cluster."""
        try:
            if self.data_dir.exists() and self.pid:
                subprocess.run(
                    self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"),
                    capture_output=True,
                    check=False,
                    timeout=60,
                )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def port_is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not a running server.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return False
    return True


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
