"""The throwaway cluster is really gone afterwards, also when a test fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pgcluster import PgCluster, pid_is_alive, port_is_listening, wait_until

INNER_TEST = """
import json, os
from pathlib import Path

def test_record_and_fail(pg_cluster, database):
    assert database.query("SELECT 1") == [(1,)]
    Path(os.environ["CLUSTER_RECORD"]).write_text(json.dumps(
        {"base": str(pg_cluster.base), "port": pg_cluster.port, "pid": pg_cluster.pid}))
    assert False, "this test fails on purpose"
"""


def test_cluster_is_stopped_and_deleted_after_a_failing_session(tmp_path):
    tests_dir = Path(__file__).resolve().parents[1]
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text((tests_dir / "conftest.py").read_text())
    (inner / "test_inner.py").write_text(INNER_TEST)
    record = tmp_path / "record.json"
    env = dict(os.environ, CLUSTER_RECORD=str(record), PYTHONPATH=str(tests_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(inner), str(inner)],
        cwd=inner,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout

    seen = json.loads(record.read_text())
    assert seen["pid"]
    assert seen["port"]
    assert not Path(seen["base"]).exists(), "cluster directory left behind"
    assert wait_until(lambda: not port_is_listening(seen["port"])), "port still listening"
    assert wait_until(lambda: not pid_is_alive(seen["pid"])), "postmaster still running"


def test_context_manager_cleans_up_when_the_body_raises():
    record = {}
    try:
        with PgCluster() as cluster:
            record.update(base=cluster.base, port=cluster.port, pid=cluster.pid)
            assert port_is_listening(cluster.port)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not record["base"].exists()
    assert wait_until(lambda: not port_is_listening(record["port"]))
    assert wait_until(lambda: not pid_is_alive(record["pid"]))
