from __future__ import annotations

from prisma import FilterModule


def test_filters_accept_text_or_a_registered_result():
    filters = FilterModule().filters()
    registered = {
        "stdout": "1 migration found in prisma/migrations\n",
        "stderr": "Database schema is up to date!\n",
        "rc": 0,
    }
    assert filters["prisma_status"](registered)["state"] == "up_to_date"
    assert filters["prisma_status"](registered, rc=1)["state"] == "error"
    assert filters["prisma_status"]("Following migration have not yet been applied:\n0_init\n", rc=1)["pending"] == [
        "0_init"
    ]
    assert (
        filters["prisma_deploy"]({"stdout": "No pending migrations to apply.\n", "stderr": "", "rc": 0})["result"]
        == "nothing_pending"
    )
