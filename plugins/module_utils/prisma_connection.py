"""The connection option every Prisma module has, and how a module reads it.

Documented once, in ``plugins/doc_fragments/prisma_connection.py``
(``extends_documentation_fragment: [prisma_connection]``). The URL comes in
only as the ``database_url`` option (``no_log``): no module reads
``DATABASE_URL`` from its environment. No Ansible import.
"""

from __future__ import annotations

try:
    from ansible.module_utils.prisma_pg import target_connection
except ImportError:  # unit tests import the file directly
    from prisma_pg import target_connection

DATABASE_URL_EMPTY = "database_url is empty: pass the Prisma PostgreSQL URL as database_url"


def connection_argument_spec() -> dict:
    """The options of ``prisma_connection``, for ``AnsibleModule(argument_spec={**connection_argument_spec(), ...})``."""
    return {"database_url": {"type": "str", "no_log": True}}


def require_database_url(params: dict, fail) -> str:
    """The URL given as ``database_url``, or ``fail`` with one line when it is empty."""
    url = params.get("database_url")
    if not isinstance(url, str) or not url.strip():
        fail(DATABASE_URL_EMPTY)
    return url


def connect(params: dict, fail) -> dict:
    """The parsed ``database_url`` (see ``prisma_url.parse_database_url``), or ``fail`` with one line."""
    return target_connection(require_database_url(params, fail), fail)


def refuse_url_in_environment(environment: dict | None, option: str, fail) -> None:
    """An ``environment`` option is logged: the URL must come as ``database_url`` instead."""
    if "DATABASE_URL" in (environment or {}):
        fail(f"{option} must not carry DATABASE_URL (it is not secret there): pass it as database_url")
