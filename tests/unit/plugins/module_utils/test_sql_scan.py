"""sql_scan: the destructive-statement gate's reading of migration.sql.

The SQL below is what ``prisma migrate dev`` writes for PostgreSQL (its
``-- CreateTable`` / ``-- AlterTable`` headers and ``Warnings`` comments
included), plus the hand-written forms data migrations use. Known defects of
the regex scanner are listed at the end as strict xfails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sql_scan import ROW_LOSS_KINDS, scan_migrations, scan_sql

FIXTURE_APP = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "prisma-app"


def found(sql):
    """(line, kind, statement, tables) of every finding."""
    return [(f["line"], f["kind"], f["statement"], f["tables"]) for f in scan_sql(sql)]


def kinds_and_tables(sql):
    return [(f["kind"], f["tables"]) for f in scan_sql(sql)]


# --- whole migrations, as Prisma generates them -------------------------------------------

PRISMA_INIT = """\
-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "authorId" INTEGER NOT NULL,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- CreateIndex
CREATE INDEX "Post_title_idx" ON "Post"("title");

-- AddForeignKey
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
"""

PRISMA_ADD_REQUIRED_COLUMN = """\
/*
  Warnings:

  - Added the required column `age` to the `User` table without a default value. This is not possible if the table is not empty.

*/
-- AlterTable
ALTER TABLE "User" ADD COLUMN     "age" INTEGER NOT NULL;
"""

PRISMA_DROP_COLUMN = """\
/*
  Warnings:

  - You are about to drop the column `bio` on the `User` table. All the data in the column will be lost.

*/
-- AlterTable
ALTER TABLE "User" DROP COLUMN "bio";
"""

PRISMA_DROP_AND_ADD_COLUMN = """\
-- AlterTable
ALTER TABLE "User" DROP COLUMN "bio",
ADD COLUMN     "about" TEXT;
"""

PRISMA_DROP_TABLE = """\
/*
  Warnings:

  - You are about to drop the `Profile` table. If the table is not empty, all the data it contains will be lost.

*/
-- DropForeignKey
ALTER TABLE "Profile" DROP CONSTRAINT "Profile_userId_fkey";

-- DropTable
DROP TABLE "Profile";
"""

PRISMA_ALTER_COLUMN_TYPE = """\
/*
  Warnings:

  - You are about to alter the column `title` on the `Post` table. The data in that column could be lost. The data in that column will be cast from `Text` to `VarChar(200)`.

*/
-- AlterTable
ALTER TABLE "Post" ALTER COLUMN "title" SET DATA TYPE VARCHAR(200);
"""

PRISMA_ENUM_ADD_VALUE = """\
-- AlterEnum
ALTER TYPE "Role" ADD VALUE 'MODERATOR';
"""

PRISMA_ENUM_REMOVE_VALUE = """\
/*
  Warnings:

  - The values [GUEST] on the enum `Role` will be removed. If these variants are still used in the database, this will fail.

*/
-- AlterEnum
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER', 'ADMIN');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
COMMIT;
"""

PRISMA_DROP_ENUM = """\
/*
  Warnings:

  - You are about to drop the column `status` on the `Post` table. All the data in the column will be lost.

*/
-- AlterTable
ALTER TABLE "Post" DROP COLUMN "status";

-- DropEnum
DROP TYPE "Status";
"""

PRISMA_REQUIRED_AFTER_BACKFILL = """\
-- AlterTable: add the column nullable first, so existing rows can't fail the NOT NULL
ALTER TABLE "products" ADD COLUMN "slug" TEXT;

-- Backfill: a URL slug from the name, made unique with the id
UPDATE "products"
SET "slug" = trim(both '-' from lower(regexp_replace("name", '[^a-zA-Z0-9]+', '-', 'g'))) || '-' || "id"
WHERE "slug" IS NULL;

-- AlterTable
ALTER TABLE "products" ALTER COLUMN "slug" SET NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "products_slug_key" ON "products"("slug");
"""


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(PRISMA_INIT, [], id="init-create-table-index-fk"),
        pytest.param(PRISMA_ADD_REQUIRED_COLUMN, [], id="add-required-column"),
        pytest.param(PRISMA_ENUM_ADD_VALUE, [], id="alter-type-add-value"),
        pytest.param(PRISMA_REQUIRED_AFTER_BACKFILL, [], id="backfill-then-set-not-null"),
        pytest.param(
            PRISMA_DROP_COLUMN,
            [(8, "drop_column", 'ALTER TABLE "User" DROP COLUMN "bio"', [])],
            id="drop-column",
        ),
        pytest.param(
            PRISMA_DROP_AND_ADD_COLUMN,
            [(2, "drop_column", 'ALTER TABLE "User" DROP COLUMN "bio", ADD COLUMN "about" TEXT', [])],
            id="drop-and-add-column-in-one-alter",
        ),
        pytest.param(
            PRISMA_DROP_TABLE,
            [(11, "drop_table", 'DROP TABLE "Profile"', ["Profile"])],
            id="drop-foreign-key-then-table",
        ),
        pytest.param(
            PRISMA_ALTER_COLUMN_TYPE,
            [(8, "alter_column_type", 'ALTER TABLE "Post" ALTER COLUMN "title" SET DATA TYPE VARCHAR(200)', [])],
            id="set-data-type",
        ),
        pytest.param(
            PRISMA_ENUM_REMOVE_VALUE,
            [
                (
                    11,
                    "alter_column_type",
                    'ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new")',
                    [],
                ),
                (12, "rename", 'ALTER TYPE "Role" RENAME TO "Role_old"', []),
                (13, "rename", 'ALTER TYPE "Role_new" RENAME TO "Role"', []),
                (14, "drop_type", 'DROP TYPE "Role_old"', []),
            ],
            id="enum-recreation-removing-a-value",
        ),
        pytest.param(
            PRISMA_DROP_ENUM,
            [
                (8, "drop_column", 'ALTER TABLE "Post" DROP COLUMN "status"', []),
                (11, "drop_type", 'DROP TYPE "Status"', []),
            ],
            id="drop-column-and-enum",
        ),
    ],
)
def test_prisma_generated_migrations(sql, expected):
    assert found(sql) == expected


# --- one statement at a time ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind", "tables"),
    [
        ('DROP TABLE "Profile";', "drop_table", ["Profile"]),
        ('DROP TABLE "_PostToTag";', "drop_table", ["_PostToTag"]),
        ('DROP TABLE "public"."Profile";', "drop_table", ["Profile"]),
        ('DROP TABLE IF EXISTS "Profile", "Avatar" CASCADE;', "drop_table", ["Profile", "Avatar"]),
        ('DROP TABLE "Profile" , "Avatar" RESTRICT;', "drop_table", ["Profile", "Avatar"]),
        ('drop table "Profile";', "drop_table", ["Profile"]),
        ("DROP TABLE order_items;", "drop_table", ["order_items"]),
        ('DROP SCHEMA "legacy" CASCADE;', "drop_schema", []),
        ('DROP VIEW IF EXISTS "active_users";', "drop_view", []),
        ('DROP MATERIALIZED VIEW "order_stats";', "drop_view", []),
        ('DROP TYPE "Status";', "drop_type", []),
        ('TRUNCATE TABLE "Session";', "truncate", ["Session"]),
        (
            'TRUNCATE "Session", "VerificationToken" RESTART IDENTITY CASCADE;',
            "truncate",
            ["Session", "VerificationToken"],
        ),
        ('TRUNCATE ONLY "public"."Session";', "truncate", ["Session"]),
        ('TRUNCATE "Session" CASCADE', "truncate", ["Session"]),
        ('DELETE FROM "Session";', "delete_without_where", ["Session"]),
        ('DELETE FROM ONLY "public"."Session" RETURNING "id";', "delete_without_where", ["Session"]),
        ('DELETE FROM "AuditLog" /* WHERE "id" < 100 */;', "delete_without_where", ["AuditLog"]),
        ('ALTER TABLE "User" DROP COLUMN "bio";', "drop_column", []),
        ('ALTER TABLE "User" DROP COLUMN IF EXISTS "bio" CASCADE;', "drop_column", []),
        ('ALTER TABLE "User" DROP "bio";', "drop_column", []),
        ('ALTER TABLE "Post" DROP CONSTRAINT "Post_authorId_fkey", DROP COLUMN "authorId";', "drop_column", []),
        ('ALTER TABLE "Post" ALTER COLUMN "views" SET DATA TYPE BIGINT;', "alter_column_type", []),
        ('ALTER TABLE "Post" ALTER "views" TYPE BIGINT USING "views"::bigint;', "alter_column_type", []),
        ('ALTER TABLE "User" RENAME TO "Customer";', "rename", ["User"]),
        ('ALTER TABLE IF EXISTS ONLY "public"."User" RENAME TO "Customer";', "rename", ["User"]),
        ('ALTER TABLE "User" RENAME COLUMN "name" TO "fullName";', "rename", []),
        ('ALTER TYPE "Role" RENAME TO "UserRole";', "rename", []),
        ('ALTER SCHEMA "legacy" RENAME TO "archive";', "rename", []),
    ],
)
def test_destructive_statement_kind_and_tables(sql, kind, tables):
    assert kinds_and_tables(sql) == [(kind, tables)]


@pytest.mark.parametrize(
    "sql",
    [
        'CREATE TABLE "Tag" ("id" SERIAL NOT NULL, CONSTRAINT "Tag_pkey" PRIMARY KEY ("id"));',
        'CREATE INDEX "Post_title_idx" ON "Post"("title");',
        'CREATE EXTENSION IF NOT EXISTS "pgcrypto";',
        'ALTER TABLE "products" ADD COLUMN     "status" TEXT NOT NULL DEFAULT \'active\';',
        'ALTER TABLE "Post" DROP CONSTRAINT "Post_authorId_fkey";',
        'ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;',
        'ALTER TABLE "User" ALTER COLUMN "name" DROP NOT NULL;',
        'ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;',
        'ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT \'USER\';',
        'DELETE FROM "Session" WHERE "expiresAt" < NOW();',
        'DELETE FROM "Post" p USING "User" u WHERE p."authorId" = u."id" AND u."deletedAt" IS NOT NULL;',
        'UPDATE "User" SET "role" = \'ADMIN\' WHERE "email" = \'ops@example.com\';',
        "BEGIN;\nCOMMIT;",
        "",
        "   \n\n",
        "-- This is an empty migration.",
    ],
)
def test_statements_that_lose_no_data_are_not_reported(sql):
    assert scan_sql(sql) == []


# --- comments and literals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        '-- DROP TABLE "User";\n',
        '-- DropTable\n-- DROP TABLE "User";\nSELECT 1;',
        '/* DROP TABLE "User"; */',
        '/*\n  TRUNCATE "Session";\n  DELETE FROM "User";\n*/\nSELECT 1;',
        'INSERT INTO "AuditLog" ("note") VALUES (\'DROP TABLE "User"; TRUNCATE "Session"\');',
        'INSERT INTO "AuditLog" ("note") VALUES (\'it\'\'s; DROP TABLE "User"\');',
        'SELECT $$DROP TABLE "User";$$;',
        'COMMENT ON TABLE "User" IS $note$DROP TABLE "User"; TRUNCATE "User"$note$;',
        'SELECT \'unterminated; DROP TABLE "User";',
        '/* unterminated\nDROP TABLE "User";',
    ],
)
def test_comments_and_literals_hide_what_they_contain(sql):
    assert scan_sql(sql) == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ('INSERT INTO "t" VALUES (\'a;b\');\nDROP TABLE "x";', [(2, "drop_table", 'DROP TABLE "x"', ["x"])]),
        ("SELECT '--'; DROP TABLE \"x\";", [(1, "drop_table", 'DROP TABLE "x"', ["x"])]),
        ("SELECT '/*'; DROP TABLE \"x\"; SELECT '*/';", [(1, "drop_table", 'DROP TABLE "x"', ["x"])]),
        ('-- don\'t forget the backfill\nDROP TABLE "x";', [(2, "drop_table", 'DROP TABLE "x"', ["x"])]),
        ('/* it\'s gone */ DROP TABLE "x";', [(1, "drop_table", 'DROP TABLE "x"', ["x"])]),
        ('SELECT $$ \' $$;\nTRUNCATE "x";', [(2, "truncate", 'TRUNCATE "x"', ["x"])]),
        ('DROP TABLE "x" -- was renamed\n;', [(1, "drop_table", 'DROP TABLE "x" -- was renamed', ["x"])]),
        (
            'DELETE FROM "AuditLog" -- WHERE "createdAt" < now() - interval \'90 days\'\n;',
            [
                (
                    1,
                    "delete_without_where",
                    'DELETE FROM "AuditLog" -- WHERE "createdAt" < now() - interval \'90 days\'',
                    ["AuditLog"],
                )
            ],
        ),
    ],
)
def test_what_follows_a_comment_or_literal_is_still_read(sql, expected):
    assert found(sql) == expected


# --- positions and shape of a finding ------------------------------------------------------------


def test_a_finding_has_every_key_and_the_file_it_came_from():
    assert scan_sql('DROP TABLE "Profile";', "prisma/migrations/20240301090000_drop_profile/migration.sql") == [
        {
            "file": "prisma/migrations/20240301090000_drop_profile/migration.sql",
            "line": 1,
            "kind": "drop_table",
            "statement": 'DROP TABLE "Profile"',
            "tables": ["Profile"],
        }
    ]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(
            'DROP TABLE "a";DROP TABLE "b";',
            [(1, "drop_table", 'DROP TABLE "a"', ["a"]), (1, "drop_table", 'DROP TABLE "b"', ["b"])],
            id="two-on-one-line",
        ),
        pytest.param('DROP TABLE "a"', [(1, "drop_table", 'DROP TABLE "a"', ["a"])], id="no-final-semicolon"),
        pytest.param('DROP TABLE "a"\n', [(1, "drop_table", 'DROP TABLE "a"', ["a"])], id="no-semicolon-newline"),
        pytest.param(
            'ALTER TABLE "a" ADD COLUMN "b" INTEGER;\r\n\r\nDROP TABLE "x";\r\n',
            [(3, "drop_table", 'DROP TABLE "x"', ["x"])],
            id="crlf-line-endings",
        ),
        pytest.param(
            '\n\n-- DropTable\nDROP\n  TABLE\n    "x";\n',
            [(4, "drop_table", 'DROP TABLE "x"', ["x"])],
            id="line-is-where-the-statement-starts",
        ),
    ],
)
def test_line_is_where_the_statement_starts_and_whitespace_is_collapsed(sql, expected):
    assert found(sql) == expected


def test_a_long_statement_is_shown_in_its_first_200_characters():
    names = ", ".join(f'"table_{i:03d}"' for i in range(40))
    finding = scan_sql(f"TRUNCATE {names} CASCADE;")[0]
    assert finding["statement"] == f"TRUNCATE {names}"[:200]
    assert len(finding["statement"]) == 200
    assert finding["tables"] == [f"table_{i:03d}" for i in range(40)]


def test_a_statement_is_reported_once_under_its_first_matching_kind():
    sql = 'ALTER TABLE "User" DROP COLUMN "bio", ALTER COLUMN "age" SET DATA TYPE BIGINT;'
    assert kinds_and_tables(sql) == [("drop_column", [])]


def test_row_loss_kinds_are_those_after_which_a_table_may_have_fewer_rows():
    assert frozenset({"drop_table", "truncate", "delete_without_where", "drop_schema", "rename"}) == ROW_LOSS_KINDS


# --- scan_migrations ------------------------------------------------------------------------------


def write_migration(migrations_dir, name, sql):
    path = migrations_dir / name / "migration.sql"
    path.parent.mkdir(parents=True)
    path.write_bytes(sql if isinstance(sql, bytes) else sql.encode())
    return path


def test_scan_migrations_reads_only_the_named_ones_in_order_with_paths_relative_to_the_project(tmp_path):
    migrations = tmp_path / "prisma" / "migrations"
    write_migration(migrations, "20240301090000_drop_profile", PRISMA_DROP_TABLE)
    write_migration(migrations, "20240302090000_drop_bio", PRISMA_DROP_COLUMN)
    write_migration(migrations, "20240303090000_applied_already", 'TRUNCATE "Session";')
    result = scan_migrations(str(tmp_path), str(migrations), ["20240302090000_drop_bio", "20240301090000_drop_profile"])
    assert result == [
        {
            "file": "prisma/migrations/20240302090000_drop_bio/migration.sql",
            "line": 8,
            "kind": "drop_column",
            "statement": 'ALTER TABLE "User" DROP COLUMN "bio"',
            "tables": [],
        },
        {
            "file": "prisma/migrations/20240301090000_drop_profile/migration.sql",
            "line": 11,
            "kind": "drop_table",
            "statement": 'DROP TABLE "Profile"',
            "tables": ["Profile"],
        },
    ]


def test_scan_migrations_reads_a_file_that_is_not_utf8(tmp_path):
    migrations = tmp_path / "prisma" / "migrations"
    write_migration(migrations, "1_latin1", b'-- Caf\xe9 table removed\nDROP TABLE "Caf\xe9";\n')
    assert [(f["line"], f["tables"]) for f in scan_migrations(str(tmp_path), str(migrations), ["1_latin1"])] == [
        (2, ["Caf\ufffd"])
    ]


def test_scan_migrations_of_nothing_pending_is_empty(tmp_path):
    assert scan_migrations(str(tmp_path), str(tmp_path / "prisma" / "migrations"), []) == []


def test_scan_migrations_fails_on_a_named_migration_without_sql(tmp_path):
    (tmp_path / "prisma" / "migrations" / "1_empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        scan_migrations(str(tmp_path), str(tmp_path / "prisma" / "migrations"), ["1_empty"])


def test_the_fixture_app_s_migrations_are_not_destructive():
    migrations = FIXTURE_APP / "prisma" / "migrations"
    names = sorted(p.name for p in migrations.iterdir() if (p / "migration.sql").is_file())
    assert names == [
        "20240105090000_init",
        "20240112090000_add_product_status",
        "20240120090000_backfill_product_slug",
        "20240201090000_add_product_name_index",
        "20240210090000_add_order_item_foreign_keys",
    ]
    assert scan_migrations(str(FIXTURE_APP), str(migrations), names) == []


# --- known defects of the regex scanner (to be replaced by a pglast-based parser) ----------------


def defect(sql, expected, reason, case_id):
    return pytest.param(sql, expected, id=case_id, marks=pytest.mark.xfail(strict=True, reason=reason))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        defect(
            'DO $$\nBEGIN\n  IF to_regclass(\'"Legacy"\') IS NOT NULL THEN\n    DROP TABLE "Legacy";\n  END IF;\nEND $$;',
            [("drop_table", ["Legacy"])],
            "statements inside a DO $$ ... $$ block are blanked like a string and never scanned",
            case_id="do-block-hides-drop-table",
        ),
        defect(
            'WITH stale AS (SELECT "id" FROM "Session") DELETE FROM "Session";',
            [("delete_without_where", ["Session"])],
            "a DELETE that starts with a WITH clause is not recognised",
            case_id="with-delete-missed",
        ),
        defect(
            'ALTER TABLE "User" ADD COLUMN "o\'clock" TEXT;\nDROP TABLE "Profile";',
            [("drop_table", ["Profile"])],
            "double-quoted identifiers are not lexed: a ' inside one opens a literal that hides the rest of the file",
            case_id="quote-in-identifier-hides-drop",
        ),
        defect(
            'UPDATE "User" SET "bio" = E\'it\\\'s\';\nDROP TABLE "Profile";',
            [("drop_table", ["Profile"])],
            "E'...' escape strings are not lexed: \\' ends the literal early and the next ' hides the rest",
            case_id="escape-string-hides-drop",
        ),
        defect(
            'ALTER INDEX "User_email_key" RENAME TO "Customer_email_key";',
            [],
            "ALTER INDEX ... RENAME (Prisma's -- RenameIndex) loses no data but is reported as rename",
            case_id="alter-index-rename",
        ),
        defect(
            'ALTER TABLE "Customer" RENAME CONSTRAINT "User_pkey" TO "Customer_pkey";',
            [],
            "ALTER TABLE ... RENAME CONSTRAINT (Prisma's -- RenamePrimaryKey) loses no data but is reported as rename",
            case_id="rename-constraint",
        ),
        defect(
            'DROP INDEX "User_email_key";',
            [],
            "DROP INDEX (Prisma's -- DropIndex) loses no data but is reported as drop_index",
            case_id="drop-index",
        ),
        defect(
            '-- AlterTable\nALTER TABLE "_PostToTag" ADD CONSTRAINT "_PostToTag_AB_pkey" PRIMARY KEY ("A", "B");\n\n'
            '-- DropIndex\nDROP INDEX "_PostToTag_AB_unique";\n',
            [],
            "Prisma 6's implicit many-to-many upgrade (unique index -> primary key) is reported as destructive",
            case_id="prisma6-m2m-primary-key",
        ),
        defect(
            'DROP TABLE "Order Items";',
            [("drop_table", ["Order Items"])],
            'a quoted name with a space is cut at the space: DROP TABLE "Order Items" excuses row loss in "Order"',
            case_id="quoted-name-with-space",
        ),
        defect(
            'DROP TABLE "legacy.orders";',
            [("drop_table", ["legacy.orders"])],
            "a quoted name containing a dot is split as if schema-qualified",
            case_id="quoted-name-with-dot",
        ),
        defect(
            'DROP TABLE "we""ird";',
            [("drop_table", ['we"ird'])],
            'a doubled "" inside a quoted name is not unescaped',
            case_id="quoted-name-with-doubled-quote",
        ),
        defect(
            "DROP TABLE Users;",
            [("drop_table", ["users"])],
            "unquoted names are not case-folded (PostgreSQL drops table users)",
            case_id="unquoted-drop-table-case",
        ),
        defect(
            "TRUNCATE public.Session;",
            [("truncate", ["session"])],
            "unquoted names are not case-folded (PostgreSQL truncates table session)",
            case_id="unquoted-truncate-case",
        ),
        defect(
            "DELETE FROM AuditLog;",
            [("delete_without_where", ["auditlog"])],
            "unquoted names are not case-folded (PostgreSQL deletes from table auditlog)",
            case_id="unquoted-delete-case",
        ),
        defect(
            "ALTER TABLE Users RENAME TO customers;",
            [("rename", ["users"])],
            "unquoted names are not case-folded (PostgreSQL renames table users)",
            case_id="unquoted-rename-case",
        ),
        defect(
            "ALTER TABLE posts ALTER COLUMN type SET DEFAULT 'draft';",
            [],
            "an unquoted column named type makes SET DEFAULT look like ALTER COLUMN ... TYPE",
            case_id="column-named-type",
        ),
        defect(
            'ALTER TABLE "Job" ADD COLUMN "rename" BOOLEAN NOT NULL DEFAULT false;',
            [],
            "a column named rename makes ADD COLUMN look like a rename",
            case_id="column-named-rename",
        ),
        defect(
            '/* outer /* nested */ DROP TABLE "User"; */\nSELECT 1;',
            [],
            "nested block comments end at the first */, so their tail is scanned as SQL",
            case_id="nested-block-comment",
        ),
    ],
)
def test_known_defects(sql, expected):
    assert kinds_and_tables(sql) == expected
