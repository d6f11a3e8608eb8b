"""Which Prisma major each integration test runs on (issue 17).

Every test runs on the Prisma 7.10.1 fixture. A test marked
``@pytest.mark.prisma6`` runs on Prisma 6.19.3 too (its id ends ``[prisma6]``),
so both majors are proven on every ``make test``; ``@pytest.mark.prisma6_only``
runs on 6.19.3 alone (what exists only there: the driver adapter in
``prisma.config.ts``, ``url``/``directUrl`` in ``schema.prisma``, ``.env``).
The fixture apps are the same schema and the same five migrations
(``tests/prismaapp.py``)."""

from __future__ import annotations

import pytest
from prismaapp import DEFAULT_MAJOR, current_major, use_major


def pytest_generate_tests(metafunc):
    if "prisma_major" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("prisma6_only"):
        majors = [6]
    elif metafunc.definition.get_closest_marker("prisma6"):
        majors = [DEFAULT_MAJOR, 6]
    else:
        majors = [DEFAULT_MAJOR]
    metafunc.parametrize("prisma_major", majors, indirect=True, ids=[f"prisma{m}" for m in majors])


@pytest.fixture(autouse=True)
def prisma_major(request):
    """The major this test's fixture app copies are made with (``PrismaApp.copy_to``)."""
    major = getattr(request, "param", DEFAULT_MAJOR)
    before = current_major()
    use_major(major)
    yield major
    use_major(before)
