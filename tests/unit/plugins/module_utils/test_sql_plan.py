"""sql_plan over PostgreSQL's own parser (issue 18, part 1): a corpus of statements, each with the locks it
takes (schema-qualified relation -> mode), what it costs, whether it blocks the application beyond a metadata
change, and what data it can lose. The forms Prisma generates for each schema change come first, then the
hand-written cases the regex scanner got wrong (issue 18's list), then the rest of PostgreSQL's locking table."""

from __future__ import annotations

import pytest
from sql_plan import (
    ACCESS_EXCLUSIVE,
    ACCESS_SHARE,
    EXCLUSIVE,
    ROW_EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SqlPlanError,
    plan_sql,
    summarize,
)

AE, SRE, SUE, RE = ACCESS_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, ROW_EXCLUSIVE
META, SCAN, REWRITE, INDEX, ROWS, NONE = "metadata", "full scan", "full rewrite", "index build", "per-row", "none"
U, P, ORD = "public.User", "public.Post", "public.orders"  # Prisma quotes its names: case is kept

# (id, sql, locks of the last statement, cost, blocking, data loss as {(what, relation, column)})
CASES = [
    # --- Prisma: tables ---
    ("prisma-create-table", 'CREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));', {U: AE}, META, False, set()),
    ("prisma-create-table-schema", 'CREATE TABLE "audit"."Log" ("id" INTEGER NOT NULL);', {"audit.Log": AE}, META, False, set()),
    ("prisma-drop-table", 'DROP TABLE "User";', {U: AE}, META, False, {("table", U, None)}),
    ("prisma-drop-table-schema", 'DROP TABLE "audit"."User";', {"audit.User": AE}, META, False, {("table", "audit.User", None)}),
    ("rename-table", 'ALTER TABLE "User" RENAME TO "Account";', {U: AE}, META, False, set()),
    # --- Prisma: columns ---
    ("prisma-add-column-nullable", 'ALTER TABLE "User" ADD COLUMN "name" TEXT;', {U: AE}, META, False, set()),
    ("prisma-add-column-default", "ALTER TABLE \"User\" ADD COLUMN \"name\" TEXT NOT NULL DEFAULT 'x';", {U: AE}, META, False, set()),
    ("prisma-add-required-column", 'ALTER TABLE "User" ADD COLUMN "name" TEXT NOT NULL;', {U: AE}, META, False, set()),
    ("prisma-add-column-now", 'ALTER TABLE "User" ADD COLUMN "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;', {U: AE}, META, False, set()),
    ("prisma-add-column-updated-at", 'ALTER TABLE "User" ADD COLUMN "updatedAt" TIMESTAMP(3) NOT NULL;', {U: AE}, META, False, set()),
    ("prisma-add-column-uuid-default", 'ALTER TABLE "User" ADD COLUMN "uid" TEXT NOT NULL DEFAULT gen_random_uuid();', {U: AE}, REWRITE, True, set()),
    ("add-column-user-function-default", 'ALTER TABLE "User" ADD COLUMN "n" INT NOT NULL DEFAULT slow_default();', {U: AE}, REWRITE, True, set()),  # its volatility is not in the SQL
    ("add-column-now-call-default", 'ALTER TABLE "User" ADD COLUMN "at" TIMESTAMPTZ NOT NULL DEFAULT now();', {U: AE}, META, False, set()),
    ("prisma-add-column-serial", 'ALTER TABLE "User" ADD COLUMN "seq" SERIAL NOT NULL;', {U: AE}, REWRITE, True, set()),
    ("add-column-identity", 'ALTER TABLE "User" ADD COLUMN "n" INTEGER GENERATED ALWAYS AS IDENTITY;', {U: AE}, REWRITE, True, set()),
    ("add-column-generated", 'ALTER TABLE "User" ADD COLUMN "l" INTEGER GENERATED ALWAYS AS (length("email")) STORED;', {U: AE}, REWRITE, True, set()),
    ("prisma-drop-column", 'ALTER TABLE "User" DROP COLUMN "name";', {U: AE}, META, False, {("column", U, "name")}),
    ("prisma-drop-two-columns", 'ALTER TABLE "User" DROP COLUMN "a",\nDROP COLUMN "b";', {U: AE}, META, False, {("column", U, "a"), ("column", U, "b")}),
    ("prisma-rename-column", 'ALTER TABLE "User" RENAME COLUMN "name" TO "fullName";', {U: AE}, META, False, set()),
    ("prisma-set-not-null", 'ALTER TABLE "User" ALTER COLUMN "name" SET NOT NULL;', {U: AE}, SCAN, True, set()),
    ("prisma-drop-not-null", 'ALTER TABLE "User" ALTER COLUMN "name" DROP NOT NULL;', {U: AE}, META, False, set()),
    ("prisma-set-default", "ALTER TABLE \"User\" ALTER COLUMN \"name\" SET DEFAULT 'x';", {U: AE}, META, False, set()),
    ("prisma-drop-default", 'ALTER TABLE "User" ALTER COLUMN "name" DROP DEFAULT;', {U: AE}, META, False, set()),
    ("prisma-type-int-to-bigint", 'ALTER TABLE "User" ALTER COLUMN "age" SET DATA TYPE BIGINT;', {U: AE}, REWRITE, True, set()),
    ("prisma-type-to-text", 'ALTER TABLE "User" ALTER COLUMN "bio" SET DATA TYPE TEXT;', {U: AE}, META, False, set()),
    ("prisma-type-to-varchar-n", 'ALTER TABLE "User" ALTER COLUMN "email" SET DATA TYPE VARCHAR(255);', {U: AE}, REWRITE, True, {("type change", U, "email")}),
    ("prisma-type-to-int", 'ALTER TABLE "User" ALTER COLUMN "age" SET DATA TYPE INTEGER;', {U: AE}, REWRITE, True, {("type change", U, "age")}),
    ("prisma-type-to-decimal", 'ALTER TABLE "User" ALTER COLUMN "price" SET DATA TYPE DECIMAL(65,30);', {U: AE}, REWRITE, True, {("type change", U, "price")}),
    ("prisma-type-using", 'ALTER TABLE "User" ALTER COLUMN "age" SET DATA TYPE INTEGER USING ("age"::integer);', {U: AE}, REWRITE, True, {("type change", U, "age")}),
    ("prisma-type-timestamp-precision", 'ALTER TABLE "User" ALTER COLUMN "at" SET DATA TYPE TIMESTAMP(3);', {U: AE}, REWRITE, True, {("type change", U, "at")}),
    ("prisma-type-jsonb", 'ALTER TABLE "User" ALTER COLUMN "meta" SET DATA TYPE JSONB;', {U: AE}, REWRITE, True, set()),
    # --- Prisma: indexes ---
    ("prisma-create-unique-index", 'CREATE UNIQUE INDEX "User_email_key" ON "User"("email");', {U: SHARE}, INDEX, True, set()),
    ("prisma-create-index", 'CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");', {P: SHARE}, INDEX, True, set()),
    ("prisma-create-index-multi", 'CREATE INDEX "Post_a_b_idx" ON "Post"("a", "b" DESC);', {P: SHARE}, INDEX, True, set()),
    ("prisma-create-index-gin", 'CREATE INDEX "Post_tags_idx" ON "Post" USING GIN ("tags");', {P: SHARE}, INDEX, True, set()),
    ("prisma-drop-index", 'DROP INDEX "User_email_key";', {"public.User_email_key": AE}, META, False, set()),
    ("prisma-rename-index", 'ALTER INDEX "User_email_key" RENAME TO "User_mail_key";', {"public.User_email_key": SUE}, META, False, set()),
    ("index-concurrently", 'CREATE INDEX CONCURRENTLY "Post_authorId_idx" ON "Post"("authorId");', {P: SUE}, INDEX, False, set()),
    ("unique-index-concurrently", 'CREATE UNIQUE INDEX CONCURRENTLY "u" ON "User"("email");', {U: SUE}, INDEX, False, set()),
    ("drop-index-concurrently", 'DROP INDEX CONCURRENTLY "User_email_key";', {"public.User_email_key": SUE}, META, False, set()),
    ("index-on-new-table", 'CREATE TABLE "T" ("a" INT);\nCREATE INDEX "T_a_idx" ON "T"("a");', {"public.T": SHARE}, INDEX, False, set()),
    # --- Prisma: enums ---
    ("prisma-create-enum", "CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');", {}, NONE, False, set()),
    ("prisma-enum-add-value", "ALTER TYPE \"Role\" ADD VALUE 'GUEST';", {}, META, False, set()),
    ("enum-rename-value", "ALTER TYPE \"Role\" RENAME VALUE 'GUEST' TO 'VISITOR';", {}, META, False, set()),
    ("prisma-enum-remove-new-type", "CREATE TYPE \"Role_new\" AS ENUM ('USER');", {}, NONE, False, set()),
    ("prisma-enum-remove-alter", 'ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");', {U: AE}, REWRITE, True, {("type change", U, "role")}),
    ("prisma-enum-rename-type", 'ALTER TYPE "Role" RENAME TO "Role_old";', {}, META, False, set()),
    ("prisma-enum-drop-old", 'DROP TYPE "Role_old";', {}, META, False, {("enum values", "public.Role_old", None)}),
    ("prisma-drop-enum", 'DROP TYPE "Role";', {}, META, False, {("enum values", "public.Role", None)}),
    # --- Prisma: relations and keys ---
    ("prisma-add-foreign-key", 'ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;', {P: SRE, U: SRE}, SCAN, True, set()),
    ("prisma-add-foreign-key-schema", 'ALTER TABLE "audit"."Log" ADD CONSTRAINT "Log_u_fkey" FOREIGN KEY ("u") REFERENCES "public"."User"("id");', {"audit.Log": SRE, U: SRE}, SCAN, True, set()),
    ("foreign-key-not-valid", 'ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") NOT VALID;', {P: SRE, U: SRE}, META, False, set()),
    ("validate-constraint", 'ALTER TABLE "Post" VALIDATE CONSTRAINT "Post_authorId_fkey";', {P: SUE}, SCAN, False, set()),
    ("prisma-drop-foreign-key", 'ALTER TABLE "Post" DROP CONSTRAINT "Post_authorId_fkey";', {P: AE}, META, False, set()),
    ("prisma-rename-constraint", 'ALTER TABLE "User" RENAME CONSTRAINT "User_pkey" TO "Account_pkey";', {U: AE}, META, False, set()),
    ("prisma-add-primary-key", 'ALTER TABLE "User" ADD CONSTRAINT "User_pkey" PRIMARY KEY ("id");', {U: AE}, INDEX, True, set()),
    ("prisma-replace-primary-key", 'ALTER TABLE "User" DROP CONSTRAINT "User_pkey",\nADD CONSTRAINT "User_pkey" PRIMARY KEY ("id", "x");', {U: AE}, INDEX, True, set()),
    ("prisma-m2m-primary-key", 'ALTER TABLE "_PostToTag" ADD CONSTRAINT "_PostToTag_AB_pkey" PRIMARY KEY ("A", "B");', {"public._PostToTag": AE}, INDEX, True, set()),
    ("unique-using-index", 'ALTER TABLE "User" ADD CONSTRAINT "User_email_key" UNIQUE USING INDEX "u";', {U: AE}, META, False, set()),
    ("add-unique-constraint", 'ALTER TABLE "User" ADD CONSTRAINT "User_email_key" UNIQUE ("email");', {U: AE}, INDEX, True, set()),
    ("check-constraint", 'ALTER TABLE "User" ADD CONSTRAINT "age_ok" CHECK ("age" >= 0);', {U: AE}, SCAN, True, set()),
    ("check-not-valid", 'ALTER TABLE "User" ADD CONSTRAINT "age_ok" CHECK ("age" >= 0) NOT VALID;', {U: AE}, META, False, set()),
    ("create-table-with-foreign-key", 'CREATE TABLE "Post" ("id" INT, "u" INT REFERENCES "User"("id"));', {P: AE, U: SRE}, META, False, set()),
    ("add-column-with-foreign-key", 'ALTER TABLE "Post" ADD COLUMN "u" INT REFERENCES "User"("id");', {P: AE, U: SRE}, META, False, set()),
    # --- Prisma: sequences, schemas, extensions ---
    ("prisma-drop-sequence", 'DROP SEQUENCE "User_id_seq";', {"public.User_id_seq": AE}, META, False, {("sequence", "public.User_id_seq", None)}),
    ("prisma-create-sequence", 'CREATE SEQUENCE "User_id_seq";', {}, NONE, False, set()),
    ("prisma-sequence-owned", 'ALTER SEQUENCE "User_id_seq" OWNED BY "User"."id";', {}, NONE, False, set()),
    ("prisma-create-extension", 'CREATE EXTENSION IF NOT EXISTS "citext";', {}, NONE, False, set()),
    ("prisma-create-schema", 'CREATE SCHEMA IF NOT EXISTS "audit";', {}, NONE, False, set()),
    ("drop-schema", 'DROP SCHEMA "audit";', {}, META, False, {("schema", "audit", None)}),
    ("drop-schema-cascade", 'DROP SCHEMA "audit" CASCADE;', {}, META, False, {("schema", "audit", None)}),
    # --- the regex scanner's misses (issue 18) ---
    ("do-block-drop", 'DO $$ BEGIN DROP TABLE "Order"; END $$;', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("do-block-delete-in-if", "DO $$ BEGIN IF true THEN DELETE FROM orders; END IF; END $$;", {ORD: RE}, ROWS, True, {("all rows", ORD, None)}),
    ("after-e-string", "SELECT E'it\\'s';\nDROP TABLE \"Order\";", {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("after-quote-in-identifier", 'CREATE TABLE "it\'s" (a int);\nDROP TABLE "Order";', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("after-dashes-in-identifier", 'CREATE TABLE "a--b" (a int);\nDROP TABLE "Order";', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("after-comment-open-in-identifier", 'CREATE TABLE "a/*b" (a int);\nDROP TABLE "Order";', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("after-nested-comment", '/* outer /* inner */ DROP TABLE "Hidden"; */\nDROP TABLE "Order";', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("after-dollar-identifier", 'CREATE TABLE a$b (x int);\nDROP TABLE "Order";', {"public.Order": AE}, META, False, {("table", "public.Order", None)}),
    ("drop-extension-cascade", "DROP EXTENSION citext CASCADE;", {}, META, False, {("columns (CASCADE)", "", None)}),
    ("drop-domain-cascade", "DROP DOMAIN email CASCADE;", {}, META, False, {("columns (CASCADE)", "", None)}),
    ("drop-extension", "DROP EXTENSION citext;", {}, META, False, set()),
    ("drop-function", "DROP FUNCTION touch(integer);", {}, META, False, {("function", "public.touch", None)}),
    ("set-schema", 'ALTER TABLE "Order" SET SCHEMA archive;', {"public.Order": AE}, META, False, {("table moved", "public.Order", None)}),
    ("with-delete", "WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone;", {ORD: RE, "public.gone": ACCESS_SHARE}, ROWS, True, {("all rows", ORD, None)}),
    ("merge-delete", "MERGE INTO orders o USING stale s ON o.id = s.id WHEN MATCHED THEN DELETE;", {ORD: RE, "public.stale": ACCESS_SHARE}, ROWS, False, {("rows", ORD, None)}),
    ("delete-using-subquery", "DELETE FROM orders USING (SELECT id FROM stale WHERE old) s;", {ORD: RE, "public.stale": ACCESS_SHARE}, ROWS, True, {("all rows", ORD, None)}),
    ("delete-where-true", "DELETE FROM orders WHERE true;", {ORD: RE}, ROWS, True, {("all rows", ORD, None)}),
    ("delete-where-one-equals-one", "DELETE FROM orders WHERE 1 = 1;", {ORD: RE}, ROWS, True, {("all rows", ORD, None)}),
    ("delete-where-not-false", "DELETE FROM orders WHERE NOT false;", {ORD: RE}, ROWS, True, {("all rows", ORD, None)}),
    ("delete-without-where", "DELETE FROM orders;", {ORD: RE}, ROWS, True, {("all rows", ORD, None)}),
    ("delete-with-where", "DELETE FROM orders WHERE id = 3;", {ORD: RE}, ROWS, False, {("rows", ORD, None)}),
    ("update-set-null", 'UPDATE "User" SET "name" = NULL;', {U: RE}, ROWS, True, {("values set to NULL", U, "name")}),
    ("update-set-null-where", "UPDATE \"User\" SET \"name\" = NULL WHERE \"id\" = 1;", {U: RE}, ROWS, False, {("values set to NULL", U, "name")}),
    ("update-every-row", "UPDATE products SET slug = lower(name);", {"public.products": RE}, ROWS, True, set()),
    ("update-from", "UPDATE products p SET price = s.price FROM staging s WHERE p.id = s.id;", {"public.products": RE, "public.staging": ACCESS_SHARE}, ROWS, False, set()),
    ("type-quoted-column-with-space", 'ALTER TABLE "Order" ALTER COLUMN "my col" TYPE int;', {"public.Order": AE}, REWRITE, True, {("type change", "public.Order", "my col")}),
    # --- false alarms of the regex scanner ---
    ("drop-identity", 'ALTER TABLE "User" ALTER COLUMN "id" DROP IDENTITY;', {U: AE}, META, False, set()),
    ("drop-expression", 'ALTER TABLE "User" ALTER COLUMN "l" DROP EXPRESSION;', {U: AE}, META, False, set()),
    # --- names: folded and qualified as PostgreSQL does ---
    ("space-in-name-is-its-own-table", 'DROP TABLE "Order Items";', {"public.Order Items": AE}, META, False, {("table", "public.Order Items", None)}),
    ("unquoted-is-folded", "DROP TABLE Orders;", {ORD: AE}, META, False, {("table", ORD, None)}),
    ("unquoted-schema-is-folded", "DROP TABLE Audit.Orders;", {"audit.orders": AE}, META, False, {("table", "audit.orders", None)}),
    ("drop-two-tables", 'DROP TABLE "a", audit."b";', {"public.a": AE, "audit.b": AE}, META, False, {("table", "public.a", None), ("table", "audit.b", None)}),
    # --- truncate, DML, reads ---
    ("truncate", "TRUNCATE orders, order_items;", {ORD: AE, "public.order_items": AE}, META, False, {("all rows", ORD, None), ("all rows", "public.order_items", None)}),
    ("truncate-cascade", "TRUNCATE orders CASCADE;", {ORD: AE}, META, False, {("all rows", ORD, None), ("all rows (CASCADE)", "", None)}),
    ("insert", "INSERT INTO orders (customer_email) VALUES ('a@b.c');", {ORD: RE}, ROWS, False, set()),
    ("insert-select", "INSERT INTO archive SELECT * FROM orders;", {"public.archive": RE, ORD: ACCESS_SHARE}, ROWS, False, set()),
    ("select", "SELECT count(*) FROM orders;", {ORD: ACCESS_SHARE}, ROWS, False, set()),
    ("select-for-update", "SELECT * FROM orders FOR UPDATE;", {ORD: ROW_SHARE}, ROWS, False, set()),
    ("copy-from", "COPY orders FROM STDIN;", {ORD: RE}, ROWS, False, set()),
    ("create-table-as", "CREATE TABLE archive AS SELECT * FROM orders;", {"public.archive": AE, ORD: ACCESS_SHARE}, ROWS, False, set()),
    ("create-view", "CREATE VIEW recent AS SELECT * FROM orders;", {"public.recent": AE, ORD: ACCESS_SHARE}, META, False, set()),
    ("drop-view", "DROP VIEW recent;", {"public.recent": AE}, META, False, {("view", "public.recent", None)}),
    ("drop-materialized-view", "DROP MATERIALIZED VIEW totals;", {"public.totals": AE}, META, False, {("materialized view", "public.totals", None)}),
    # --- the rest of the locking table ---
    ("lock-table-share", "LOCK TABLE orders IN SHARE MODE;", {ORD: SHARE}, META, False, set()),
    ("lock-table-default", "LOCK TABLE orders;", {ORD: AE}, META, False, set()),
    ("vacuum", "VACUUM orders;", {ORD: SUE}, SCAN, False, set()),
    ("vacuum-full", "VACUUM FULL orders;", {ORD: AE}, REWRITE, True, set()),
    ("cluster", "CLUSTER orders USING orders_pkey;", {ORD: AE}, REWRITE, True, set()),
    ("reindex", "REINDEX TABLE orders;", {ORD: SHARE}, INDEX, True, set()),
    ("reindex-concurrently", "REINDEX TABLE CONCURRENTLY orders;", {ORD: SUE}, INDEX, False, set()),
    ("refresh-matview", "REFRESH MATERIALIZED VIEW totals;", {"public.totals": AE}, REWRITE, True, set()),
    ("refresh-matview-concurrently", "REFRESH MATERIALIZED VIEW CONCURRENTLY totals;", {"public.totals": EXCLUSIVE}, REWRITE, True, set()),
    ("create-trigger", "CREATE TRIGGER t BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();", {ORD: SRE}, META, False, set()),
    ("drop-trigger", "DROP TRIGGER t ON orders;", {ORD: AE}, META, False, set()),
    ("disable-trigger", "ALTER TABLE orders DISABLE TRIGGER t;", {ORD: SRE}, META, False, set()),
    ("comment-on-table", "COMMENT ON TABLE orders IS 'a;b';", {ORD: SUE}, META, False, set()),
    ("comment-on-column", "COMMENT ON COLUMN orders.note IS 'x';", {ORD: SUE}, META, False, set()),
    ("set-statistics", "ALTER TABLE orders ALTER COLUMN note SET STATISTICS 500;", {ORD: SUE}, META, False, set()),
    ("set-fillfactor", "ALTER TABLE orders SET (fillfactor = 70);", {ORD: SUE}, META, False, set()),
    ("set-logged", "ALTER TABLE orders SET LOGGED;", {ORD: AE}, REWRITE, True, set()),
    ("set-tablespace", "ALTER TABLE orders SET TABLESPACE fast;", {ORD: AE}, REWRITE, True, set()),
    ("attach-partition", "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');", {"public.events": SUE, "public.events_2026": AE}, SCAN, True, set()),
    ("detach-partition-concurrently", "ALTER TABLE events DETACH PARTITION events_2025 CONCURRENTLY;", {"public.events": SUE}, META, False, set()),
    ("create-policy", "CREATE POLICY mine ON orders USING (owner = current_user);", {ORD: AE}, META, False, set()),
    ("enable-rls", "ALTER TABLE orders ENABLE ROW LEVEL SECURITY;", {ORD: AE}, META, False, set()),
    ("grant", "GRANT SELECT ON orders TO reporting;", {}, NONE, False, set()),
    ("create-function", "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.at = now(); RETURN NEW; END $$;", {}, NONE, False, set()),
    ("set-lock-timeout", "SET lock_timeout = '5s';", {}, NONE, False, set()),
    ("begin", "BEGIN;", {}, NONE, False, set()),
    ("commit", "COMMIT;", {}, NONE, False, set()),
]  # fmt: skip


def _loss(statement: dict) -> set:
    return {(d["what"], d["relation"], d["column"]) for d in statement["data_loss"]}


@pytest.mark.parametrize(
    ("sql", "locks", "cost", "blocking", "loss"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_statement_is_classified(sql, locks, cost, blocking, loss):
    statement = plan_sql(sql, "m")[-1]
    assert {r["relation"]: r["lock"] for r in statement["relations"]} == locks, statement
    assert statement["cost"] == cost, statement
    assert statement["blocking"] is blocking, statement
    assert _loss(statement) == loss, statement
    assert statement["destructive"] is bool(loss), statement
    assert statement["unclassified"] == ""


def test_the_corpus_holds_at_least_100_statements():
    assert len(CASES) >= 100


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'x'; END $$;", "EXECUTE of a dynamic string"),
        ("DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$;", "FOR ... EXECUTE"),
        ("DO $$ BEGIN CALL cleanup(); END $$;", "CALL"),
        ("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE x') $$;", "in language plpython3u"),
        ("CALL cleanup();", "CALL runs a procedure"),
        ("CREATE PUBLICATION p FOR ALL TABLES;", "CreatePublicationStmt is not a statement this check knows"),
    ],
    ids=["do-execute", "do-for-execute", "do-call", "do-other-language", "call", "unknown-statement"],
)
def test_what_cannot_be_read_counts_as_destructive_and_blocking(sql, why):
    [statement, *_] = plan_sql(sql, "m")
    assert why in statement["unclassified"], statement
    assert statement["destructive"] is True
    assert statement["blocking"] is True


def test_a_do_block_is_read_statement_by_statement_on_its_own_lines():
    sql = 'SELECT 1;\n\nDO $$\nBEGIN\n  CREATE INDEX "i" ON "Order"("a");\n  DROP TABLE "Old";\nEND\n$$;\n'
    do, index, drop = plan_sql(sql, "m")[1:]
    assert (do["kind"], do["line"], do["destructive"], do["blocking"]) == ("DoStmt", 3, False, False)
    assert (index["kind"], index["line"], index["blocking"], index["in_do_block"]) == ("IndexStmt", 5, True, True)
    assert (drop["kind"], drop["line"], _loss(drop)) == ("DropStmt", 6, {("table", "public.Old", None)})


def test_lines_are_where_each_statement_starts_after_comments():
    sql = '-- a comment; with a semicolon\n/* and /* a nested */ one; */\n\nCREATE TABLE "a" (x int);\n\n  -- x\n  DROP TABLE "a";'
    assert [(s["line"], s["kind"]) for s in plan_sql(sql, "m")] == [(4, "CreateStmt"), (7, "DropStmt")]
    assert plan_sql(sql, "m")[1]["statement"] == 'DROP TABLE "a"'


def test_lines_count_characters_not_bytes():
    sql = "SELECT 'ñandú 🚀';\nSELECT 'é';\nDROP TABLE \"Ü\";"
    assert [s["line"] for s in plan_sql(sql, "m")] == [1, 2, 3]


@pytest.mark.parametrize(
    ("sql", "line", "message"),
    [
        ("SELECT 1;\n\nSELEC 2;", 3, 'syntax error at or near "SELEC"'),
        ("CREATE TABLE a (x int);\nCREATE TABLE 'b' (x int);", 2, "syntax error at or near \"'b'\""),
        ("SELECT 'unterminated;\n", 1, "unterminated quoted string"),
        ("SELECT 1;\nDO $$ BEGIN DROPP TABLE a; END $$;", 2, 'syntax error at or near "DROPP"'),
    ],
    ids=["keyword", "quoted-name", "unterminated", "in-do-block"],
)
def test_a_statement_the_parser_rejects_stops_with_file_and_line(sql, line, message):
    with pytest.raises(SqlPlanError) as err:
        plan_sql(sql, "20240301090000_broken")
    text = str(err.value)
    assert text.startswith(f"cannot verify migration 20240301090000_broken line {line}: "), text
    assert message in text
    assert "\n" not in text


def test_the_default_schema_is_the_urls():
    [statement] = plan_sql('DROP TABLE "User";', "m", schema="tenant_42")
    assert _loss(statement) == {("table", "tenant_42.User", None)}


def test_a_table_created_in_the_same_migration_is_never_blocking():
    sql = (
        'CREATE TABLE "T" ("a" INT, "b" INT);\n'
        'CREATE UNIQUE INDEX "T_a_key" ON "T"("a");\n'
        'ALTER TABLE "T" ADD CONSTRAINT "T_b_fkey" FOREIGN KEY ("b") REFERENCES "User"("id");\n'
        'ALTER TABLE "T" ALTER COLUMN "a" SET NOT NULL;\n'
    )
    plan = plan_sql(sql, "m")
    assert [s["blocking"] for s in plan] == [False, False, True, False]
    fk = plan[2]
    assert {r["relation"]: r["new"] for r in fk["relations"]} == {"public.T": True, U: False}


def test_a_blocking_statement_names_its_safe_form():
    index, fk, not_null = plan_sql(
        'CREATE INDEX "i" ON "Post"("a");\n'
        'ALTER TABLE "Post" ADD CONSTRAINT "f" FOREIGN KEY ("a") REFERENCES "User"("id");\n'
        'ALTER TABLE "Post" ALTER COLUMN "a" SET NOT NULL;\n',
        "m",
    )
    assert "CONCURRENTLY" in index["safe_form"]
    assert "NOT VALID" in fk["safe_form"]
    assert "VALIDATE CONSTRAINT" in fk["safe_form"]
    assert "CHECK (col IS NOT NULL) NOT VALID" in not_null["safe_form"]
    assert [r["blocks"] for r in index["relations"]] == ["writes"]
    assert not_null["relations"][0]["blocks"] == "reads and writes"


def test_the_fixture_migrations_read_as_expected():
    from pathlib import Path

    migrations = Path(__file__).resolve().parents[3] / "fixtures" / "prisma-app" / "prisma" / "migrations"
    plans = {
        d.name: plan_sql((d / "migration.sql").read_text(), d.name) for d in sorted(migrations.iterdir()) if d.is_dir()
    }
    summary = {name: summarize(plan) for name, plan in plans.items()}
    assert all(not s["destructive"] for s in summary.values()), summary
    blocking = {name: [b["kind"] for b in s["blocking"]] for name, s in summary.items() if s["blocking"]}
    assert blocking == {
        # its UPDATE has a WHERE: which rows it changes is the live facts' to say, not the parser's
        "20240120090000_backfill_product_slug": ["AlterTableStmt", "IndexStmt"],
        "20240201090000_add_product_name_index": ["IndexStmt"],
        "20240210090000_add_order_item_foreign_keys": ["AlterTableStmt", "AlterTableStmt"],
    }, blocking


def test_summarize_lists_the_relations_that_lose_rows():
    plan = plan_sql('DROP TABLE "Order Items";\nTRUNCATE audit."User";\nDELETE FROM logs WHERE id < 5;', "m")
    assert summarize(plan)["loses_rows"] == ["audit.User", "public.Order Items"]


def test_a_renamed_table_says_its_new_name():
    [statement] = plan_sql('ALTER TABLE audit."Order" RENAME TO "Purchase";', "m")
    assert statement["renamed"] == {"from": "audit.Order", "to": "audit.Purchase"}
