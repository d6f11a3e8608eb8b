"""Issue 20: the compression level chosen from what bounds the dump on this host."""

from __future__ import annotations

import os
import zlib

import pytest
from prisma_dump_rates import (
    TARGET_SHARE,
    choose_level,
    probe_compression,
    probe_read_sql,
    probe_write,
    projections,
    server_shares_cores,
)

MB = 1e6
# zlib on text: fast levels compress less; 0 costs nothing and keeps everything
LEVELS = {
    0: {"cpu_bytes_per_s": None, "ratio": 1.0},
    1: {"cpu_bytes_per_s": 80 * MB, "ratio": 0.40},
    6: {"cpu_bytes_per_s": 25 * MB, "ratio": 0.30},
    9: {"cpu_bytes_per_s": 8 * MB, "ratio": 0.29},
}


def test_a_fast_disk_and_a_fast_database_on_two_cores_dump_uncompressed():
    # compressing at 80 MB/s per core cannot keep up with 400 MB/s of COPY: 0 is the only level near the bound
    level, projected, bound = choose_level(400 * MB, 600 * MB, LEVELS, 2, False)
    assert (level, bound) == (0, 400 * MB)
    assert projected[0] == 400 * MB
    assert projected[1] == 160 * MB  # two compressors


def test_a_slow_disk_makes_compression_pay():
    # 40 MB/s of disk: uncompressed the dump writes 40 MB/s; level 1 reads 100 MB/s and writes 40
    level, projected, bound = choose_level(400 * MB, 40 * MB, LEVELS, 2, False)
    assert bound == 40 * MB
    assert projected[1] == pytest.approx(100 * MB)
    assert projected[6] == pytest.approx(50 * MB)  # CPU-bound at two compressors of 25 MB/s
    assert projected[9] == pytest.approx(16 * MB)  # below 85 % of the bound: not chosen
    assert level == 6  # the most compressing level still at the bound


def test_on_the_servers_own_host_the_server_and_the_compressors_share_the_cores():
    apart = projections(100 * MB, 1e12, LEVELS, 2, False)
    shared = projections(100 * MB, 1e12, LEVELS, 2, True)
    assert apart[1] == 100 * MB
    assert shared[1] == pytest.approx(1 / (1 / (100 * MB) + 1 / (160 * MB)))
    assert shared[0] == apart[0] == 100 * MB


def test_level_0_is_always_a_candidate():
    level, projected, bound = choose_level(10 * MB, 10 * MB, {0: LEVELS[0], 9: LEVELS[9]}, 1, True)
    assert level == 0
    assert projected[0] >= TARGET_SHARE * bound


def test_the_read_probe_reads_about_the_same_bytes_of_each_table():
    statements, covered = probe_read_sql([('"public"."big"', 1000, 10000), ('"public"."small"', 100, 50)], per_job=500)
    assert statements == [
        'COPY (SELECT * FROM "public"."big" LIMIT 5000) TO STDOUT',
        'COPY (SELECT * FROM "public"."small" LIMIT 50) TO STDOUT',
    ]
    assert covered == 600


def test_compression_is_measured_on_the_sample():
    sample = b"".join(
        b"%d,Product %d,%s\n" % (i, i, zlib.crc32(b"%d" % i).to_bytes(4, "big").hex().encode()) for i in range(40000)
    )
    levels = probe_compression(sample, levels=(0, 1, 9))
    assert levels[0] == {"cpu_bytes_per_s": None, "ratio": 1.0}
    assert levels[9]["ratio"] <= levels[1]["ratio"] < 1.0
    assert levels[1]["cpu_bytes_per_s"] > 0


def test_the_write_probe_leaves_nothing_behind(tmp_path):
    rate = probe_write(str(tmp_path), size=2 * 1024 * 1024)
    assert rate > 0
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("/var/run/postgresql", True),
        ("", True),
        ("db.internal", False),
        ("10.0.0.5", False),
    ],
)
def test_which_servers_share_this_hosts_cores(host, local):
    assert server_shares_cores(host) is local
