"""The connection options every Prisma module has, and how a module reads them.

Documented once, in ``plugins/doc_fragments/prisma_connection.py``
(``extends_documentation_fragment: [prisma_connection]``). The URL comes in
only as the ``database_url`` option (``no_log``): no module reads
``DATABASE_URL`` from its environment. ``schema_dir`` is the folder of the
Prisma schema file, against which a relative ``sslcert``/``sslidentity`` in
the URL is read, as Prisma reads it. No Ansible import.
"""

from __future__ import annotations

import os

try:
    from ansible.module_utils.prisma_pg import target_connection
except ImportError:  # unit tests import the file directly
    from prisma_pg import target_connection

DATABASE_URL_EMPTY = "database_url is empty: pass the Prisma PostgreSQL URL as database_url"


def connection_argument_spec() -> dict:
    """The options of ``prisma_connection``, for ``AnsibleModule(argument_spec={**connection_argument_spec(), ...})``."""
    return {"database_url": {"type": "str", "no_log": True}, "schema_dir": {"type": "path"}}


def require_database_url(params: dict, fail) -> str:
    """The URL given as ``database_url``, or ``fail`` with one line when it is empty."""
    url = params.get("database_url")
    if not isinstance(url, str) or not url.strip():
        fail(DATABASE_URL_EMPTY)
    return url


def schema_dir(params: dict, schema: str | None = None) -> str | None:
    """The folder Prisma reads a relative ``sslcert``/``sslidentity`` from: ``schema_dir`` when given;
    else, with ``project_dir``, the folder of ``schema`` (a schema path relative to ``project_dir``, or
    a multi-file schema folder), or ``<project_dir>/prisma`` (``prisma/schema`` for a multi-file schema
    without ``prisma/schema.prisma``); else None (a relative path is then refused)."""
    if params.get("schema_dir"):
        return params["schema_dir"]
    project = params.get("project_dir")
    if not project:
        return None
    if schema:
        path = os.path.join(project, schema)
        return path if os.path.isdir(path) else os.path.dirname(path)
    folder = os.path.join(project, "prisma")
    multi = os.path.join(folder, "schema")
    if os.path.isdir(multi) and not os.path.isfile(os.path.join(folder, "schema.prisma")):
        return multi
    return folder


def connect(params: dict, fail, schema: str | None = None) -> dict:
    """The parsed ``database_url`` (see ``prisma_url.parse_database_url``) with its TLS settings read
    against ``schema_dir(params, schema)``, or ``fail`` with one line."""
    return target_connection(require_database_url(params, fail), fail, schema_dir(params, schema))


def refuse_url_in_environment(environment: dict | None, option: str, fail) -> None:
    """An ``environment`` option is logged: the URL must come as ``database_url`` instead."""
    if "DATABASE_URL" in (environment or {}):
        fail(f"{option} must not carry DATABASE_URL (it is not secret there): pass it as database_url")
