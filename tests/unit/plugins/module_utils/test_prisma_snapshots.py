from __future__ import annotations

from prisma_snapshots import AUTO_DIRECTORY_MIN_BYTES, choose_format

BIG, SMALL = AUTO_DIRECTORY_MIN_BYTES, AUTO_DIRECTORY_MIN_BYTES - 1


def test_auto_picks_the_directory_format_for_big_databases_on_multi_core_hosts():
    assert choose_format("auto", 1, BIG, 2) == ("directory", 2)
    assert choose_format("auto", 1, 10 * BIG, 16) == ("directory", 4)  # at most 4 jobs unless told
    assert choose_format("auto", 6, BIG, 16) == ("directory", 6)  # backup_jobs wins


def test_auto_keeps_one_file_for_small_databases_or_one_core():
    assert choose_format("auto", 1, SMALL, 8) == ("custom", 1)
    assert choose_format("auto", 4, BIG, 1) == ("custom", 1)
    assert choose_format("auto", 1, BIG, None) == ("custom", 1)


def test_an_explicit_format_is_kept():
    assert choose_format("custom", 1, 10 * BIG, 8) == ("custom", 1)
    assert choose_format("directory", 3, 1, 1) == ("directory", 3)
