"""Documentation of the connection option every Prisma module has.

Used with ``extends_documentation_fragment: [prisma_connection]``; the matching
argument spec is ``connection_argument_spec()`` in
``plugins/module_utils/prisma_connection.py``.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  database_url:
    description:
      - The Prisma PostgreSQL URL of the target, C(postgresql://USER:PW@HOST:PORT/DB?schema=SCHEMA). Never logged.
      - The only way the module gets the URL - it never reads C(DATABASE_URL) from its environment. When the
        module needs the database and this is empty, it fails with one line naming this option.
      - For C(psql), C(pg_dump) and C(pg_restore) the URL is converted for libpq - Prisma-only query parameters
        (C(schema), C(connection_limit), C(pgbouncer) ...) are left out, C(schema) selects the schema (default
        C(public)), C(sslmode) and the other libpq parameters are kept. The password reaches them as C(PGPASSWORD)
        and the Prisma CLI as C(DATABASE_URL), in their environment only, never on a command line, and it is
        removed from everything the module returns.
    type: str
"""
