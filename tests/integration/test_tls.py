"""Issue 16, class E: psql, pg_dump and pg_restore check the server as the Prisma URL tells Prisma to.

A throwaway PostgreSQL 15 cluster runs with ssl=on and a server certificate for ``localhost``
signed by a CA made here with openssl; a second CA signed nothing. The real modules run through
ansible-playbook: a snapshot through ``sslaccept=strict`` with ``sslcert`` relative to the schema's
folder succeeds with the right CA and fails closed with the wrong one (no dump left, one line,
rc != 0), as does libpq's own ``sslmode=verify-full``; psql (prisma_database_info) fails closed too,
also when the host name is not the certificate's. Without ``sslaccept`` Prisma checks no
certificate, and neither do the tools. A PKCS#12 ``sslidentity`` logs in a role that needs a client
certificate, and its ``sslpassword`` appears nowhere.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from ansible_run import run_tasks
from pgcluster import PgCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "module_utils"))
from prisma_url import parse_database_url  # noqa: E402

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(not OPENSSL, reason="openssl is not installed")
URL = "{{ lookup('env', 'TLS_TEST_URL') }}"
CERT_ROLE = "certuser"


def openssl(*argv, stdin: str | None = None) -> None:
    subprocess.run([OPENSSL, *map(str, argv)], input=stdin.encode() if stdin else None, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return cert, key


def sign(folder: Path, name: str, subject: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (folder / f"{name}{s}" for s in (".key", ".csr", ".crt", ".ext"))
    ext.write_text(extensions)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext)  # fmt: skip
    return cert, key


def random_secret(special: str) -> str:
    rng = random.Random()  # noqa: S311 (test data: random so that no piece of it occurs by chance)
    body = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(22))
    return body[:9] + special + body[9:] + special + "Zq"


def pieces(secret: str) -> set[str]:
    found = set()
    for value in (secret, quote(secret, safe="")):
        found |= {value} | {value[i : i + 6] for i in range(len(value) - 5)}
    return found


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The app's layout (prisma/ is the schema's folder, certs/ beside it), the CAs, and the cluster."""
    root = tmp_path_factory.mktemp("tls")
    pki = root / "pki"
    pki.mkdir()
    ca = make_ca(pki, "test-ca")
    wrong = make_ca(pki, "wrong-ca")
    server = sign(pki, "server", "/CN=localhost", ca,
                  "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    client = sign(pki, "client", f"/CN={CERT_ROLE}", ca, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    app = root / "app"
    (app / "prisma").mkdir(parents=True)
    (app / "certs").mkdir()
    shutil.copy(ca[0], app / "certs" / "ca.crt")
    shutil.copy(wrong[0], app / "certs" / "wrong-ca.crt")
    sslpassword = random_secret("&")
    openssl("pkcs12", "-export", "-inkey", client[1], "-in", client[0], "-out", app / "certs" / "client.p12",
            "-passout", "stdin", stdin=sslpassword + "\n")  # fmt: skip
    cluster = PgCluster(
        ssl_cert_file=server[0],
        ssl_key_file=server[1],
        ssl_ca_file=ca[0],
        hba_lines=(
            f"hostssl all {CERT_ROLE} 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
            f"host all {CERT_ROLE} 127.0.0.1/32 reject",
        ),
    )
    with cluster:
        database = cluster.create_database()
        database.execute(
            "CREATE TABLE public.items (id int PRIMARY KEY, name text); INSERT INTO public.items VALUES (1, 'a'), (2, 'b');"
            " ALTER TABLE public.items OWNER TO app"
        )
        cluster.psql(f"CREATE ROLE {CERT_ROLE} LOGIN PASSWORD '{cluster.app_password}'")
        yield {
            "cluster": cluster,
            "database": database,
            "app": app,
            "schema_dir": str(app / "prisma"),
            "ca": str(app / "certs" / "ca.crt"),
            "wrong_ca": str(app / "certs" / "wrong-ca.crt"),
            "sslpassword": sslpassword,
        }


def url(tls, query: str, host: str = "localhost", user: str = "app") -> str:
    db = tls["database"]
    return f"postgresql://{user}:{quote(db.password, safe='')}@{host}:{db.cluster.port}/{db.name}?schema=public&{query}"


def run(tmp_path, tls, database_url: str, *tasks):
    """Run the tasks with the URL in the environment (never on a command line) and a private TMPDIR."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    out = run_tasks(tmp_path, list(tasks), env={"TLS_TEST_URL": database_url, "TMPDIR": str(tmpdir)})
    text = out.stdout + out.stderr
    for secret in (tls["database"].password, tls["sslpassword"]):
        assert not [p for p in pieces(secret) if p in text], "a piece of a secret in the output"
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("prisma-tls-")], "a converted identity was left"
    return out


def snapshot_task(dest: Path, schema_dir: str | None, ignore_errors: bool = False) -> dict:
    args = {"database_url": URL, "dest_dir": str(dest), "keep": 5}
    if schema_dir:
        args["schema_dir"] = schema_dir
    return {"name": "snapshot", "prisma_snapshot": args, **({"ignore_errors": True} if ignore_errors else {})}


def info_task(schema_dir: str | None = None, **extra) -> dict:
    args = {"database_url": URL, **({"schema_dir": schema_dir} if schema_dir else {}), **extra}
    return {"name": "info", "prisma_database_info": args, "ignore_errors": True}


def assert_fails_closed(out, task: str, dest: Path | None = None) -> str:
    result = out[task]
    assert result.get("failed") is True, result.get("msg")
    message = result["msg"]
    assert "\n" not in message
    assert "Traceback" not in str(result)
    assert "module_stderr" not in result
    if dest is not None:
        assert out.rc != 0
        assert not dest.exists() or list(dest.iterdir()) == [], "a dump or a partial file was left"
    return message


def test_a_snapshot_through_sslaccept_strict_checks_the_server_against_sslcert(tmp_path, tls):
    """sslcert=../certs/ca.crt is read from the schema's folder (prisma/), as Prisma reads it."""
    dest = tmp_path / "backups"
    out = run(tmp_path, tls, url(tls, "sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt"),
              snapshot_task(dest, tls["schema_dir"]))  # fmt: skip
    assert out.rc == 0, out["snapshot"].get("msg")
    result = out["snapshot"]
    assert "module_stderr" not in result
    assert Path(result["path"]).is_file()
    assert result["manifest"]["tables"] == {"items": 2}


def test_a_snapshot_with_the_wrong_ca_fails_closed(tmp_path, tls):
    dest = tmp_path / "backups"
    out = run(tmp_path, tls, url(tls, "sslmode=require&sslaccept=strict&sslcert=../certs/wrong-ca.crt"),
              snapshot_task(dest, tls["schema_dir"]))  # fmt: skip
    message = assert_fails_closed(out, "snapshot", dest)
    port = tls["database"].cluster.port
    assert message.startswith(f"the TLS certificate of localhost:{port} was not accepted: check that sslcert"), message


def test_a_relative_sslcert_without_schema_dir_is_refused_before_connecting(tmp_path, tls):
    dest = tmp_path / "backups"
    out = run(tmp_path, tls, url(tls, "sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt"),
              snapshot_task(dest, None))  # fmt: skip
    message = assert_fails_closed(out, "snapshot", dest)
    assert message.startswith("database_url: sslcert is a relative path"), message
    assert "schema_dir" in message
    assert "../certs" not in message


@pytest.mark.parametrize("ca", ["ca", "wrong_ca"])
def test_libpq_verify_full_given_directly_keeps_working(tmp_path, tls, ca):
    dest = tmp_path / "backups"
    out = run(tmp_path, tls, url(tls, f"sslmode=verify-full&sslrootcert={tls[ca]}"), snapshot_task(dest, None))
    if ca == "ca":
        assert out.rc == 0, out["snapshot"].get("msg")
        assert Path(out["snapshot"]["path"]).is_file()
    else:
        assert "was not accepted" in assert_fails_closed(out, "snapshot", dest)


@pytest.mark.parametrize(
    ("query", "host", "accepted"),
    [
        pytest.param("sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt", "localhost", True, id="strict, right CA"),
        pytest.param("sslaccept=strict&sslcert=../certs/ca.crt", "localhost", True, id="strict, Prisma's prefer"),
        pytest.param("sslmode=require&sslaccept=strict&sslcert=../certs/wrong-ca.crt", "localhost", False,
                     id="strict, wrong CA"),
        pytest.param("sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt", "127.0.0.1", False,
                     id="strict, host not in the certificate (verify-full, not verify-ca)"),
        pytest.param("sslmode=require&sslaccept=strict", "localhost", False,
                     id="strict without sslcert: the system CAs do not know the test CA"),
        pytest.param("sslmode=require&sslcert=../certs/wrong-ca.crt", "localhost", True,
                     id="no sslaccept: Prisma checks nothing, nor do the tools"),
        pytest.param("sslmode=require&sslaccept=accept_invalid_certs&sslcert=../certs/wrong-ca.crt", "localhost",
                     True, id="accept_invalid_certs"),
    ],
)  # fmt: skip
def test_psql_through_prisma_database_info_checks_as_prisma_does(tmp_path, tls, query, host, accepted):
    out = run(tmp_path, tls, url(tls, query, host), info_task(tls["schema_dir"]))
    if accepted:
        assert not out["info"].get("failed"), out["info"].get("msg")
        assert out["info"]["database"] == tls["database"].name
    else:
        message = assert_fails_closed(out, "info")
        assert "was not accepted" in message, message


@pytest.mark.parametrize(
    ("query", "host", "ssl_in_use"),
    [
        ("sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt", "localhost", "t"),
        ("sslmode=require", "localhost", "t"),
        ("sslmode=disable&sslaccept=strict&sslcert=../certs/ca.crt", "localhost", "f"),
    ],
)
def test_the_session_the_tools_open_is_the_one_the_url_asks_for(tls, query, host, ssl_in_use):
    """psql with exactly the environment the modules give it: pg_stat_ssl says whether TLS is in use."""
    conn = parse_database_url(url(tls, query, host), tls["schema_dir"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | conn["libpq_env"]
    proc = subprocess.run(
        ["psql", "--no-psqlrc", "-At", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ssl_in_use


def test_sslidentity_logs_in_a_role_that_needs_a_client_certificate(tmp_path, tls):
    """The PKCS#12 identity is converted for libpq (sslpassword on openssl's stdin only), the
    server accepts the certificate, and the converted files are gone when the module ends."""
    identity = f"sslidentity=../certs/client.p12&sslpassword={quote(tls['sslpassword'], safe='')}"
    strict = "sslmode=require&sslaccept=strict&sslcert=../certs/ca.crt"
    out = run(tmp_path, tls, url(tls, f"{strict}&{identity}", user=CERT_ROLE), info_task(tls["schema_dir"]))
    assert not out["info"].get("failed"), out["info"].get("msg")
    out = run(tmp_path, tls, url(tls, strict, user=CERT_ROLE), info_task(tls["schema_dir"]))
    assert_fails_closed(out, "info")  # without the identity the server refuses the role
    wrong = f"sslidentity=../certs/client.p12&sslpassword={quote(random_secret('#'), safe='')}"
    out = run(tmp_path, tls, url(tls, f"{strict}&{wrong}", user=CERT_ROLE), info_task(tls["schema_dir"]))
    message = assert_fails_closed(out, "info")
    assert message.startswith("database_url: openssl could not read the PKCS#12 file named by sslidentity"), message
