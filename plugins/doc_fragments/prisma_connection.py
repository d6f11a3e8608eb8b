"""Documentation of the connection options every Prisma module has.

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
      - TLS parameters are read as Prisma reads them and given to the libpq tools so that they check the server
        as Prisma does, never less - C(sslaccept=strict) becomes C(sslmode=verify-full); C(sslcert) is the
        server's CA and becomes C(sslrootcert) (it is not a client certificate); C(sslidentity) (a PKCS#12 client
        identity) with C(sslpassword) is converted with C(openssl) into a private folder removed at exit. Without
        C(sslaccept), Prisma checks no certificate and neither do the tools. A setting that cannot be honoured
        fails with one line naming the parameter. libpq's own C(sslmode=verify-full) and an absolute
        C(sslrootcert) keep working. The table is in docs/tls.md.
    type: str
  schema_dir:
    description:
      - The folder of the Prisma schema file. Prisma reads a relative C(sslcert) or C(sslidentity) in the URL
        relative to it, and so does this module.
      - Default - with I(project_dir), the folder of the schema (C(<project_dir>/prisma), or
        C(<project_dir>/prisma/schema) for a multi-file schema); otherwise none, and a relative C(sslcert) or
        C(sslidentity) then fails with one line saying to set this or to give an absolute path.
    type: path
"""
