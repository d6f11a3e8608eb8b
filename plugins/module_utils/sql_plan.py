"""What each statement of a migration does to each table, read with PostgreSQL's own parser.

pglast (libpg_query: the parser of PostgreSQL 18 itself) turns a migration's SQL
into the server's parse tree; this module reads that tree, never the text, and
says for every statement (issue 18, part 1):

- the line it starts on (1-based, in the file), and the first 80 characters;
- the relations it touches, schema-qualified, named as PostgreSQL names them
  (unquoted identifiers folded to lower case by the parser, quoted ones kept);
- the lock mode it takes on each (PostgreSQL's "Explicit Locking" chapter,
  table 13.2, and ``AlterTableGetLockLevel``), and what that lock blocks for
  the application: ``reads and writes``, ``writes``, or ``nothing``;
- what it costs while it holds the lock: ``metadata``, ``full scan``,
  ``full rewrite``, ``index build``, ``per-row``, or ``unknown``;
- what data it can lose: a table, a column, an enum type's values, a schema, a
  sequence, all rows, rows, values set to NULL, a type change that may narrow;
- ``blocking`` (it blocks reads or writes of an existing relation for longer
  than a metadata change: a scan, a rewrite, an index build, or every row of a
  DML statement) and ``destructive`` (it can lose data).

``DO`` blocks are parsed as PL/pgSQL and each SQL statement in them is read
like any other; a ``DO`` block holding what cannot be read (dynamic
``EXECUTE``, a ``CALL``) counts as destructive **and** blocking. So does a
statement this module does not know. A statement the parser rejects raises
``SqlPlanError`` with ``cannot verify migration X line N: <parser message>``.

The analysis runs on the controller (pglast is in the project's venv), over the
JSON form of the parse tree, one pass: linear in the input.
Pure Python, no Ansible import.
"""

from __future__ import annotations

import bisect
import gc
import json

try:
    from pglast.parser import ParseError, parse_plpgsql_json, parse_sql_json
except ImportError:  # pragma: no cover - the controller's venv has it (requirements.txt)
    ParseError = parse_plpgsql_json = parse_sql_json = None

# --- Lock modes, weakest first, and what each blocks for an application's reads and writes ------------------
ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
LOCK_ORDER = (ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
              ACCESS_EXCLUSIVE)  # fmt: skip
# An application reads with ACCESS SHARE and writes with ROW EXCLUSIVE: a lock blocks what it conflicts with.
BLOCKS = {
    ACCESS_SHARE: "nothing",
    ROW_SHARE: "nothing",
    ROW_EXCLUSIVE: "nothing",  # DML: the rows it changes are locked, not the table
    SHARE_UPDATE_EXCLUSIVE: "nothing",  # conflicts with DDL, VACUUM and itself only
    SHARE: "writes",
    SHARE_ROW_EXCLUSIVE: "writes",
    EXCLUSIVE: "writes",
    ACCESS_EXCLUSIVE: "reads and writes",
}
LOCK_MODES = {  # LOCK TABLE ... IN <mode> MODE: the parser's numbers (lockdefs.h)
    1: ACCESS_SHARE, 2: ROW_SHARE, 3: ROW_EXCLUSIVE, 4: SHARE_UPDATE_EXCLUSIVE, 5: SHARE, 6: SHARE_ROW_EXCLUSIVE,
    7: EXCLUSIVE, 8: ACCESS_EXCLUSIVE,
}  # fmt: skip

# Costs while the lock is held; the first three are brief whatever the table's size.
METADATA, NONE, PER_ROW = "metadata", "none", "per-row"
FULL_SCAN, FULL_REWRITE, INDEX_BUILD, UNKNOWN = "full scan", "full rewrite", "index build", "unknown"
LONG_COSTS = frozenset({FULL_SCAN, FULL_REWRITE, INDEX_BUILD, UNKNOWN})

# The safe forms the plan offers for a blocking statement.
SAFE_INDEX = "CREATE INDEX CONCURRENTLY, alone in its own migration (Prisma >= 7.4 runs it outside a transaction)"
SAFE_FOREIGN_KEY = "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later migration"
SAFE_CHECK = "ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in a later migration"
SAFE_NOT_NULL = (
    "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later migration, then"
    " SET NOT NULL (PostgreSQL uses the valid check and skips the scan)"
)
SAFE_UNIQUE = "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX"
SAFE_REWRITE = "add a new nullable column, backfill it in batches, then switch the application to it"
SAFE_DML = "backfill in batches of a few thousand rows, each in its own transaction"

# Functions whose value differs per row: a column added with one as its default rewrites the table.
VOLATILE_DEFAULTS = frozenset({"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v4", "clock_timestamp",
                               "timeofday", "nextval", "uuidv4", "uuidv7"})  # fmt: skip
# Built-in functions a default may call without a rewrite (stable or immutable: the default is computed once).
# A call to any other function may be volatile - the parser cannot see a user function's volatility - and
# counts as a rewrite.
NON_VOLATILE_DEFAULTS = frozenset({"now", "statement_timestamp", "transaction_timestamp", "lower", "upper", "concat",
                                   "to_jsonb", "jsonb_build_object", "jsonb_build_array", "json_build_object",
                                   "json_build_array", "make_date", "make_timestamp", "make_timestamptz", "date_trunc",
                                   "timezone", "to_timestamp", "to_char", "md5", "length", "left", "right", "abs",
                                   "round", "array_fill", "btrim", "trim", "replace", "format"})  # fmt: skip
SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})
# The widest text types: changing a varchar or text column to these is binary-coercible, a metadata change.
WIDE_TEXT = frozenset({"text", "varchar"})
# Targets no narrower than what Prisma changes to them from (Int -> BigInt, Float -> Decimal, String -> Text):
# a rewrite, but no value is narrowed (without a USING expression and without a length or precision).
WIDENING = WIDE_TEXT | frozenset({"int8", "float8", "numeric", "jsonb", "timestamptz"})


class SqlPlanError(Exception):
    """A migration the parser rejects, in one line: ``cannot verify migration X line N: <message>``."""


# --- Reading the parse tree -----------------------------------------------------------------------------------


def _node(value):
    """``{"NodeType": {...}}`` -> ("NodeType", {...}); anything else -> (None, value)."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, body),) = value.items()
        if isinstance(body, dict) and kind[:1].isupper():
            return kind, body
    return None, value


def _strings(items) -> list:
    return [_node(item)[1].get("sval", "") for item in items or []]


def _relation(rangevar: dict, schema: str) -> str:
    """A RangeVar's schema-qualified name (the parser already folded unquoted identifiers)."""
    return f"{rangevar.get('schemaname') or schema}.{rangevar.get('relname', '')}"


def _qualified(names: list, schema: str) -> str:
    """A dotted name list (DROP, RENAME, types) as schema.name."""
    names = [n for n in names if n]
    if len(names) >= 2:
        return f"{names[-2]}.{names[-1]}"
    return f"{schema}.{names[0]}" if names else ""


def _walk(value):
    """Every dict in a parse tree, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _is_true(expr) -> bool:
    """A WHERE that keeps every row: ``true``, ``1 = 1``, ``'a' = 'a'``, ``NOT false``."""
    kind, body = _node(expr)
    if kind == "A_Const":
        return body.get("boolval", {}).get("boolval", False) is True if "boolval" in body else False
    if kind == "A_Expr" and body.get("kind") == "AEXPR_OP" and _strings(body.get("name")) == ["="]:
        left, right = _node(body.get("lexpr")), _node(body.get("rexpr"))
        if left[0] == right[0] == "A_Const":
            strip = {k: v for k, v in left[1].items() if k != "location"}
            return strip == {k: v for k, v in right[1].items() if k != "location"}
    if kind == "BoolExpr" and body.get("boolop") == "NOT_EXPR":
        (arg,) = body.get("args") or [None]
        inner = _node(arg)
        return inner[0] == "A_Const" and "boolval" in inner[1] and not inner[1]["boolval"].get("boolval", False)
    return False


def _one_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# --- One statement's findings ---------------------------------------------------------------------------------


class _Finding:
    def __init__(self, kind: str):
        self.kind = kind
        self.locks: dict = {}  # relation -> lock mode (the strongest taken)
        self.cost = NONE
        self.data_loss: list = []
        self.safe_form = ""
        self.notes: list = []
        self.every_row = False  # a DML statement that changes every row of its table
        self.unclassified = ""
        self.renamed: dict = {}
        self.creates: set = set()  # relations this statement creates

    def create(self, relation: str) -> None:
        self.creates.add(relation)
        self.lock(relation, ACCESS_EXCLUSIVE)

    def lock(self, relation: str, mode: str) -> None:
        held = self.locks.get(relation)
        if held is None or LOCK_ORDER.index(mode) > LOCK_ORDER.index(held):
            self.locks[relation] = mode

    def costs(self, cost: str) -> None:
        order = (NONE, METADATA, PER_ROW, FULL_SCAN, INDEX_BUILD, FULL_REWRITE, UNKNOWN)
        if order.index(cost) > order.index(self.cost):
            self.cost = cost

    def loses(self, what: str, relation: str, column: str | None = None, detail: str = "") -> None:
        self.data_loss.append({"what": what, "relation": relation, "column": column, "detail": detail})

    def safe(self, text: str) -> None:
        if text and text not in self.safe_form:
            self.safe_form = f"{self.safe_form}; {text}" if self.safe_form else text


class _Analyzer:
    def __init__(self, schema: str):
        self.schema = schema
        self.created: set = set()  # relations created earlier in the same migration: no application session uses them

    # -- dispatch --
    def statement(self, kind: str, body: dict) -> _Finding:
        handler = getattr(self, f"_{kind}", None)
        finding = _Finding(kind)
        if handler is None:
            finding.unclassified = f"{kind} is not a statement this check knows"
            finding.costs(UNKNOWN)
            return finding
        handler(body, finding)
        return finding

    # -- transaction control, settings and objects that hold no rows --
    def _quiet(self, body, f):
        f.costs(NONE)

    _TransactionStmt = _VariableSetStmt = _VariableShowStmt = _CreateSchemaStmt = _CreateExtensionStmt = _quiet
    _CreateEnumStmt = _CompositeTypeStmt = _CreateDomainStmt = _CreateSeqStmt = _AlterSeqStmt = _quiet
    _CreateFunctionStmt = _GrantStmt = _GrantRoleStmt = _CreateRoleStmt = _AlterRoleStmt = _AlterOwnerStmt = _quiet
    _AlterFunctionStmt = _CreateCastStmt = _AlterDefaultPrivilegesStmt = _NotifyStmt = _CheckPointStmt = _quiet
    _AlterExtensionStmt = _DefineStmt = _AlterCollationStmt = _ExplainStmt = _quiet

    def _AlterEnumStmt(self, body, f):
        f.costs(METADATA)  # ADD VALUE / RENAME VALUE: the type only, no table is locked or scanned

    def _CommentStmt(self, body, f):
        if body.get("objtype") in ("OBJECT_TABLE", "OBJECT_COLUMN", "OBJECT_VIEW", "OBJECT_MATVIEW"):
            names = _strings(_node(body.get("object"))[1].get("items", [])) if body.get("object") else []
            if body.get("objtype") == "OBJECT_COLUMN":
                names = names[:-1]
            if names:
                f.lock(_qualified(names, self.schema), SHARE_UPDATE_EXCLUSIVE)
        f.costs(METADATA)

    def _ViewStmt(self, body, f):
        f.create(_relation(body.get("view", {}), self.schema))
        self._reads(body.get("query"), f)
        f.costs(METADATA)

    # -- DDL on tables --
    def _CreateStmt(self, body, f):
        f.create(_relation(body.get("relation", {}), self.schema))
        for item in _walk(body.get("tableElts") or []):
            constraint = item.get("Constraint")
            if constraint and constraint.get("contype") == "CONSTR_FOREIGN" and constraint.get("pktable"):
                f.lock(_relation(constraint["pktable"], self.schema), SHARE_ROW_EXCLUSIVE)
        if body.get("inhRelations") and body.get("partbound"):
            for parent in body["inhRelations"]:
                f.lock(_relation(_node(parent)[1], self.schema), ACCESS_EXCLUSIVE)
        f.costs(METADATA)

    def _CreateTableAsStmt(self, body, f):
        into = body.get("into", {}).get("IntoClause", body.get("into", {}))
        self._reads(body.get("query"), f)
        f.create(_relation(into.get("rel", {}), self.schema))
        f.costs(PER_ROW)

    def _IndexStmt(self, body, f):
        table = _relation(body.get("relation", {}), self.schema)
        if body.get("concurrent"):
            f.lock(table, SHARE_UPDATE_EXCLUSIVE)
        else:
            f.lock(table, SHARE)
            f.safe(SAFE_UNIQUE if body.get("unique") else SAFE_INDEX)
        f.costs(INDEX_BUILD)

    def _ReindexStmt(self, body, f):
        concurrent = any(_node(p)[1].get("defname") == "concurrently" for p in body.get("params") or [])
        if body.get("relation"):
            f.lock(_relation(body["relation"], self.schema), SHARE_UPDATE_EXCLUSIVE if concurrent else SHARE)
        else:
            f.lock(f"{self.schema}.{body.get('name', '')}", SHARE_UPDATE_EXCLUSIVE if concurrent else SHARE)
        f.costs(INDEX_BUILD)
        if not concurrent:
            f.safe("REINDEX ... CONCURRENTLY")

    def _ClusterStmt(self, body, f):
        f.lock(_relation(body.get("relation", {}), self.schema), ACCESS_EXCLUSIVE)
        f.costs(FULL_REWRITE)

    def _VacuumStmt(self, body, f):
        full = any(_node(o)[1].get("defname") == "full" for o in body.get("options") or [])
        for rel in body.get("rels") or []:
            rangevar = _node(rel)[1].get("relation", {})
            f.lock(_relation(rangevar, self.schema), ACCESS_EXCLUSIVE if full else SHARE_UPDATE_EXCLUSIVE)
        f.costs(FULL_REWRITE if full else FULL_SCAN)

    def _RefreshMatViewStmt(self, body, f):
        f.lock(
            _relation(body.get("relation", {}), self.schema), EXCLUSIVE if body.get("concurrent") else ACCESS_EXCLUSIVE
        )
        f.costs(FULL_REWRITE)

    def _LockStmt(self, body, f):
        for rel in body.get("relations") or []:
            f.lock(_relation(_node(rel)[1], self.schema), LOCK_MODES.get(body.get("mode"), ACCESS_EXCLUSIVE))
        f.costs(METADATA)
        f.notes.append("LOCK TABLE holds its lock until the migration's transaction ends")

    def _CreateTrigStmt(self, body, f):
        f.lock(_relation(body.get("relation", {}), self.schema), SHARE_ROW_EXCLUSIVE)
        f.costs(METADATA)

    def _CreatePolicyStmt(self, body, f):
        f.lock(_relation(body.get("table", {}), self.schema), ACCESS_EXCLUSIVE)
        f.costs(METADATA)

    _AlterPolicyStmt = _CreatePolicyStmt

    def _CreateStatsStmt(self, body, f):
        for rel in body.get("relations") or []:
            f.lock(_relation(_node(rel)[1], self.schema), SHARE_UPDATE_EXCLUSIVE)
        f.costs(METADATA)

    def _RuleStmt(self, body, f):
        f.lock(_relation(body.get("relation", {}), self.schema), ACCESS_EXCLUSIVE)
        f.costs(METADATA)

    def _RenameStmt(self, body, f):
        kind = body.get("renameType")
        if body.get("relation"):
            relation = _relation(body["relation"], self.schema)
        else:
            relation = _qualified(_strings(_node(body.get("object"))[1].get("items", [])) if body.get("object") else [], self.schema)  # fmt: skip
        if kind == "OBJECT_INDEX":
            f.lock(relation, SHARE_UPDATE_EXCLUSIVE)  # PostgreSQL 12 and later
        elif kind in ("OBJECT_TABLE", "OBJECT_COLUMN", "OBJECT_TABCONSTRAINT", "OBJECT_VIEW", "OBJECT_MATVIEW",
                      "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE", "OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"):  # fmt: skip
            f.lock(relation, ACCESS_EXCLUSIVE)
        if kind == "OBJECT_TABLE":
            f.renamed = {"from": relation, "to": f"{relation.rsplit('.', 1)[0]}.{body.get('newname', '')}"}
            f.notes.append(f"renames {relation}: the running application's queries by the old name fail")
        elif kind == "OBJECT_COLUMN":
            f.notes.append(
                f"renames column {body.get('subname')} of {relation}: queries by the old name fail until the"
                " application is deployed"
            )
        f.costs(METADATA)

    def _AlterObjectSchemaStmt(self, body, f):
        if body.get("relation"):
            relation = _relation(body["relation"], self.schema)
            f.lock(relation, ACCESS_EXCLUSIVE)
            if body.get("objectType") in ("OBJECT_TABLE", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_VIEW"):
                f.loses(
                    "table moved", relation, detail=f"moved to schema {body.get('newschema')}: gone from {relation}"
                )
        f.costs(METADATA)

    def _AlterTableStmt(self, body, f):
        table = _relation(body.get("relation", {}), self.schema)
        is_index = body.get("objtype") == "OBJECT_INDEX"
        for cmd in body.get("cmds") or []:
            self._alter_table_cmd(table, _node(cmd)[1], f, is_index)

    def _alter_table_cmd(self, table, cmd, f, is_index):  # noqa: C901 - one branch per sub-command, as PostgreSQL's
        sub = cmd.get("subtype", "")
        column = cmd.get("name")
        definition = _node(cmd.get("def"))
        if sub == "AT_AddColumn":
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(FULL_REWRITE if self._rewrites_on_add(definition[1]) else METADATA)
            if f.cost == FULL_REWRITE:
                f.safe(SAFE_REWRITE)
            for item in _walk(definition[1]):
                constraint = item.get("Constraint")
                if constraint and constraint.get("contype") == "CONSTR_FOREIGN" and constraint.get("pktable"):
                    f.lock(_relation(constraint["pktable"], self.schema), SHARE_ROW_EXCLUSIVE)
                if constraint and constraint.get("contype") in ("CONSTR_PRIMARY", "CONSTR_UNIQUE"):
                    f.costs(INDEX_BUILD)
        elif sub == "AT_DropColumn":
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(METADATA)
            f.loses("column", table, column)
        elif sub == "AT_AlterColumnType":
            f.lock(table, ACCESS_EXCLUSIVE)
            self._type_change(table, column, definition[1], f)
        elif sub == "AT_SetNotNull":
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(FULL_SCAN)
            f.safe(SAFE_NOT_NULL)
        elif sub in ("AT_AddConstraint", "AT_AddIndex", "AT_AddIndexConstraint"):
            self._add_constraint(table, definition[1], f)
        elif sub == "AT_ValidateConstraint":
            f.lock(table, SHARE_UPDATE_EXCLUSIVE)
            f.costs(FULL_SCAN)
        elif sub in ("AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_ClusterOn", "AT_DropCluster",
                     "AT_SetRelOptions", "AT_ResetRelOptions", "AT_ReplaceRelOptions"):  # fmt: skip
            f.lock(table, SHARE_UPDATE_EXCLUSIVE)
            f.costs(METADATA)
        elif sub.startswith(("AT_EnableTrig", "AT_DisableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig")):
            f.lock(table, SHARE_ROW_EXCLUSIVE)
            f.costs(METADATA)
        elif sub in ("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod"):
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(FULL_REWRITE)
        elif sub == "AT_AttachPartition":
            f.lock(table, SHARE_UPDATE_EXCLUSIVE)
            partition = _node(definition[1].get("name"))[1] if definition[1].get("name") else {}
            if partition:
                f.lock(_relation(partition, self.schema), ACCESS_EXCLUSIVE)
            f.costs(FULL_SCAN)
            f.safe("add a CHECK constraint matching the partition bound (NOT VALID, then VALIDATE) before ATTACH")
        elif sub == "AT_DetachPartition":
            f.lock(table, SHARE_UPDATE_EXCLUSIVE if definition[1].get("concurrent") else ACCESS_EXCLUSIVE)
            f.costs(METADATA)
        elif sub in ("AT_ColumnDefault", "AT_CookedColumnDefault", "AT_DropNotNull", "AT_DropConstraint",
                     "AT_AddIdentity", "AT_SetIdentity", "AT_DropIdentity", "AT_DropExpression", "AT_SetStorage",
                     "AT_SetCompression", "AT_ChangeOwner", "AT_EnableRowSecurity", "AT_DisableRowSecurity",
                     "AT_ForceRowSecurity", "AT_NoForceRowSecurity", "AT_ReplicaIdentity", "AT_AddInherit",
                     "AT_DropInherit", "AT_AddOf", "AT_DropOf", "AT_AlterConstraint", "AT_GenericOptions",
                     "AT_SetExpression", "AT_AddColumnToView"):  # fmt: skip
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(FULL_REWRITE if sub == "AT_SetExpression" else METADATA)
        else:
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(UNKNOWN)
            f.unclassified = f"ALTER {'INDEX' if is_index else 'TABLE'} sub-command {sub} is not classified"

    @staticmethod
    def _rewrites_on_add(column: dict) -> bool:
        """A new column rewrites the table when its default differs per row (a volatile function, a serial
        type, an identity or a stored generated column); a constant default is metadata since PostgreSQL 11."""
        type_names = _strings(_node(column.get("typeName"))[1].get("names", [])) if column.get("typeName") else []
        if type_names and type_names[-1] in SERIAL_TYPES:
            return True
        for item in _walk(column.get("constraints") or []):
            constraint = item.get("Constraint")
            if not constraint:
                continue
            if constraint.get("contype") in ("CONSTR_IDENTITY", "CONSTR_GENERATED"):
                return True
            if constraint.get("contype") == "CONSTR_DEFAULT":
                for expr in _walk(constraint.get("raw_expr")):
                    call = expr.get("FuncCall")
                    name = _strings(call.get("funcname"))[-1:] if call else []
                    if name and (name[0] in VOLATILE_DEFAULTS or name[0] not in NON_VOLATILE_DEFAULTS):
                        return True
        return False

    def _type_change(self, table, column, definition, f):
        type_name = _node(definition.get("typeName"))[1] if definition.get("typeName") else {}
        names = _strings(type_name.get("names", []))
        target = names[-1] if names else ""
        widest = target in WIDE_TEXT and not type_name.get("typmods") and not definition.get("raw_default")
        if widest:
            f.costs(METADATA)
            f.notes.append(
                f"{table}.{column} to {target}: a metadata change when the column is varchar or text,"
                " a full rewrite from any other type"
            )
        else:
            f.costs(FULL_REWRITE)
            f.safe(SAFE_REWRITE)
            if definition.get("raw_default") or target not in WIDENING or type_name.get("typmods"):
                detail = "USING expression" if definition.get("raw_default") else f"to {target}"
                f.loses("type change", table, column, f"{detail}: values may be narrowed, rounded or converted")

    def _add_constraint(self, table, constraint, f):
        kind = constraint.get("contype")
        not_valid = bool(constraint.get("skip_validation"))
        if kind == "CONSTR_FOREIGN":
            f.lock(table, SHARE_ROW_EXCLUSIVE)
            if constraint.get("pktable"):
                f.lock(_relation(constraint["pktable"], self.schema), SHARE_ROW_EXCLUSIVE)
            f.costs(METADATA if not_valid else FULL_SCAN)
            if not not_valid:
                f.safe(SAFE_FOREIGN_KEY)
        elif kind == "CONSTR_CHECK":
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(METADATA if not_valid else FULL_SCAN)
            if not not_valid:
                f.safe(SAFE_CHECK)
        elif kind == "CONSTR_NOTNULL":
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(METADATA if not_valid else FULL_SCAN)
            if not not_valid:
                f.safe(SAFE_NOT_NULL)
        elif kind in ("CONSTR_PRIMARY", "CONSTR_UNIQUE", "CONSTR_EXCLUSION"):
            f.lock(table, ACCESS_EXCLUSIVE)
            if constraint.get("indexname"):  # USING INDEX: the index exists already
                f.costs(METADATA)
            else:
                f.costs(INDEX_BUILD)
                f.safe(SAFE_UNIQUE)
        else:
            f.lock(table, ACCESS_EXCLUSIVE)
            f.costs(METADATA)

    # -- DROP and TRUNCATE --
    def _DropStmt(self, body, f):
        kind = body.get("removeType", "")
        cascade = body.get("behavior") == "DROP_CASCADE"
        for obj in body.get("objects") or []:
            node_kind, node = _node(obj)
            if node_kind == "List":
                names = _strings(node.get("items"))
            elif node_kind == "TypeName":
                names = _strings(node.get("names"))
            elif node_kind == "String":
                names = [node.get("sval", "")]
            elif node_kind == "ObjectWithArgs":
                names = _strings(node.get("objname"))
            else:
                names = []
            name = _qualified(names, self.schema) if kind != "OBJECT_SCHEMA" else (names[0] if names else "")
            self._drop_one(kind, name, names, body, f)
        if cascade:
            f.notes.append("CASCADE: every object that depends on it is dropped too (columns of its type included)")
            if kind in ("OBJECT_TYPE", "OBJECT_DOMAIN", "OBJECT_EXTENSION"):
                f.loses("columns (CASCADE)", "", detail=f"DROP {kind[7:]} ... CASCADE drops the columns that use it")
        f.costs(METADATA)

    def _drop_one(self, kind, name, names, body, f):
        if kind == "OBJECT_TABLE":
            f.lock(name, ACCESS_EXCLUSIVE)
            f.loses("table", name)
        elif kind == "OBJECT_INDEX":
            # The table is not named: the lock is on the index's table, brief (metadata)
            f.lock(name, SHARE_UPDATE_EXCLUSIVE if body.get("concurrent") else ACCESS_EXCLUSIVE)
            f.notes.append(f"DROP INDEX {name} locks its table ({'SHARE UPDATE EXCLUSIVE' if body.get('concurrent') else 'ACCESS EXCLUSIVE'}), briefly")  # fmt: skip
        elif kind == "OBJECT_SEQUENCE":
            f.lock(name, ACCESS_EXCLUSIVE)
            f.loses("sequence", name)
        elif kind == "OBJECT_SCHEMA":
            f.loses("schema", name, detail="every table in it" if body.get("behavior") == "DROP_CASCADE" else "")
        elif kind == "OBJECT_TYPE":
            f.loses("enum values", name, detail="the type and the values only it allowed")
        elif kind in ("OBJECT_MATVIEW", "OBJECT_VIEW", "OBJECT_FOREIGN_TABLE"):
            f.lock(name, ACCESS_EXCLUSIVE)
            f.loses(kind[7:].lower().replace("matview", "materialized view").replace("_", " "), name)
        elif kind in ("OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_AGGREGATE"):
            f.loses("function", name)
        elif kind in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"):
            if len(names) >= 2:  # DROP TRIGGER name ON table: the table's names, then the trigger's
                f.lock(_qualified(names[:-1], self.schema), ACCESS_EXCLUSIVE)
        elif kind in ("OBJECT_DOMAIN", "OBJECT_EXTENSION"):
            pass  # without CASCADE it fails while a column uses it; with CASCADE see _DropStmt

    def _TruncateStmt(self, body, f):
        for rel in body.get("relations") or []:
            name = _relation(_node(rel)[1], self.schema)
            f.lock(name, ACCESS_EXCLUSIVE)
            f.loses("all rows", name)
        if body.get("behavior") == "DROP_CASCADE":
            f.notes.append("TRUNCATE ... CASCADE empties every table with a foreign key to these too")
            f.loses("all rows (CASCADE)", "", detail="every table referencing them")
        f.costs(METADATA)

    # -- DML --
    def _with(self, body, f):
        for cte in (body.get("withClause") or {}).get("ctes") or []:
            query = _node(cte)[1].get("ctequery")
            kind, inner = _node(query)
            if kind:
                getattr(self, f"_{kind}", self._reads_stmt)(inner, f)

    def _reads_stmt(self, body, f):
        self._reads({"x": body}, f)

    def _reads(self, tree, f):
        for item in _walk(tree):
            rangevar = item.get("RangeVar")
            if rangevar:
                f.lock(_relation(rangevar, self.schema), ACCESS_SHARE)

    def _SelectStmt(self, body, f):
        self._with(body, f)
        self._reads({k: v for k, v in body.items() if k != "withClause"}, f)
        if body.get("lockingClause"):
            for item in _walk(body.get("fromClause") or []):
                if item.get("RangeVar"):
                    f.lock(_relation(item["RangeVar"], self.schema), ROW_SHARE)
        f.costs(PER_ROW)

    def _InsertStmt(self, body, f):
        self._with(body, f)
        self._reads(body.get("selectStmt"), f)
        f.lock(_relation(body.get("relation", {}), self.schema), ROW_EXCLUSIVE)
        f.costs(PER_ROW)

    def _dml(self, body, f, reads) -> str:
        """The table a DELETE, UPDATE or MERGE changes (row locks: ROW EXCLUSIVE), after what it reads."""
        self._with(body, f)
        self._reads(reads, f)
        table = _relation(body.get("relation", {}), self.schema)
        f.lock(table, ROW_EXCLUSIVE)
        f.costs(PER_ROW)
        f.safe(SAFE_DML)
        return table

    @staticmethod
    def _set_to_null(targets, table, f, which) -> None:
        for target in targets or []:
            res = _node(target)[1]
            value = _node(res.get("val"))
            if value[0] == "A_Const" and value[1].get("isnull"):
                f.loses("values set to NULL", table, res.get("name"), which)

    def _DeleteStmt(self, body, f):
        table = self._dml(body, f, {"using": body.get("usingClause"), "where": body.get("whereClause")})
        where = body.get("whereClause")
        if where is None or _is_true(where):
            f.every_row = True
            f.loses("all rows", table, detail="DELETE without a WHERE that limits it")
        else:
            f.loses("rows", table, detail="the rows its WHERE selects")

    def _UpdateStmt(self, body, f):
        table = self._dml(body, f, {"from": body.get("fromClause"), "where": body.get("whereClause")})
        where = body.get("whereClause")
        f.every_row = where is None or _is_true(where)
        self._set_to_null(body.get("targetList"), table, f, "every row" if f.every_row else "rows its WHERE selects")

    def _MergeStmt(self, body, f):
        table = self._dml(body, f, body.get("sourceRelation"))
        for clause in body.get("mergeWhenClauses") or []:
            when = _node(clause)[1]
            if when.get("commandType") == "CMD_DELETE":
                f.loses("rows", table, detail="MERGE ... THEN DELETE")
            self._set_to_null(when.get("targetList"), table, f, "rows MERGE matches")

    def _CopyStmt(self, body, f):
        if body.get("relation"):
            f.lock(_relation(body["relation"], self.schema), ROW_EXCLUSIVE if body.get("is_from") else ACCESS_SHARE)
        f.costs(PER_ROW)

    def _CallStmt(self, body, f):
        f.unclassified = "CALL runs a procedure whose statements this check cannot see"
        f.costs(UNKNOWN)

    def _DropOwnedStmt(self, body, f):
        f.loses("everything the roles own", "", detail="DROP OWNED")
        f.costs(METADATA)


# --- A whole migration ----------------------------------------------------------------------------------------


def _skip_to_token(data: bytes, pos: int) -> int:
    """The first byte at or after ``pos`` that is not white space or a comment (nested /* */ as PostgreSQL)."""
    n = len(data)
    while pos < n:
        c = data[pos : pos + 1]
        if c.isspace():
            pos += 1
        elif data.startswith(b"--", pos):
            end = data.find(b"\n", pos)
            pos = n if end < 0 else end + 1
        elif data.startswith(b"/*", pos):
            depth, pos = 1, pos + 2
            while pos < n and depth:
                if data.startswith(b"/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif data.startswith(b"*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        else:
            break
    return pos


def _result(f: _Finding, line: int, text: str, created_before: set, in_do: bool = False) -> dict:
    """One statement's record; a relation created earlier in the migration, or by this statement, is ``new``:
    no session of the application waits for it."""
    relations = []
    for name, mode in f.locks.items():
        new = name in created_before or name in f.creates
        relations.append({"relation": name, "lock": mode, "blocks": BLOCKS[mode], "new": new})
    long_hold = f.cost in LONG_COSTS or (f.cost == PER_ROW and f.every_row)
    blocking = bool(f.unclassified) or any(
        not r["new"] and long_hold and (r["blocks"] != "nothing" or (f.every_row and r["lock"] == ROW_EXCLUSIVE))
        for r in relations
    )
    if f.every_row:
        for r in relations:
            if r["lock"] == ROW_EXCLUSIVE:
                r["blocks"] = "writes (every row it changes, until it commits)"
    return {
        "line": line,
        "statement": _one_line(text),
        "kind": f.kind,
        "relations": relations,
        "cost": f.cost,
        "data_loss": f.data_loss,
        "destructive": bool(f.data_loss) or bool(f.unclassified),
        "blocking": blocking,
        "safe_form": f.safe_form if blocking else "",
        "renamed": f.renamed,
        "notes": f.notes,
        "unclassified": f.unclassified,
        "in_do_block": in_do,
    }


def _error_line(data: bytes, exc, base_line: int) -> int:
    """The line of a parser error: its location is a 0-based character offset into the text it was given."""
    location = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(location, int) and location >= 0:
        return base_line + data.decode("utf-8", "replace")[:location].count("\n")
    return base_line


def _message(exc) -> str:
    return str(exc.args[0] if exc.args else exc).splitlines()[0]


def plan_sql(sql: str, name: str = "", schema: str = "public") -> list[dict]:
    """Every statement of one migration's SQL, in order, with what it does (see the module's docstring)."""
    if parse_sql_json is None:
        raise SqlPlanError("pglast is not installed on the controller: run 'make setup' (requirements.txt)")
    # The parse tree of a large migration is millions of small dicts and lists, all alive until the end:
    # the cyclic garbage collector would walk them again and again (measured: 20,000 statements 1.8 s with
    # it, 1.1 s without). Nothing here makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _plan_text(sql, name, _Analyzer(schema), 1)
    finally:
        if collecting:
            gc.enable()


def _plan_text(sql: str, name: str, analyzer: _Analyzer, base_line: int) -> list[dict]:
    data = sql.encode("utf-8")
    line_starts = [0]
    at = data.find(b"\n")
    while at >= 0:
        line_starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError as exc:
        raise SqlPlanError(
            f"cannot verify migration {name} line {_error_line(data, exc, base_line)}: {_message(exc)}"
        ) from None
    out = []
    for raw in tree.get("stmts", []):
        start = raw.get("stmt_location", 0)
        end = start + raw["stmt_len"] if raw.get("stmt_len") else len(data)
        first = _skip_to_token(data, start)
        line = base_line + bisect.bisect_right(line_starts, first) - 1
        text = data[first:end].decode("utf-8", "replace").rstrip().rstrip(";").rstrip()
        kind, body = _node(raw["stmt"])
        before = set(analyzer.created)
        if kind == "DoStmt":
            out.extend(_plan_do(name, body, text, line, analyzer))
            continue
        finding = analyzer.statement(kind, body)
        analyzer.created |= finding.creates
        out.append(_result(finding, line, text, before))
    return out


_UNREADABLE = {
    "PLpgSQL_stmt_dynexecute": "EXECUTE of a dynamic string",
    "PLpgSQL_stmt_dynfors": "FOR ... EXECUTE",
    "PLpgSQL_stmt_call": "CALL",
}


def _plan_do(name: str, body: dict, text: str, line: int, analyzer: _Analyzer) -> list[dict]:
    """A DO block, then each SQL statement of its PL/pgSQL body, read like any other. A block holding what
    cannot be read (dynamic EXECUTE, CALL, another language) is itself destructive and blocking."""
    language = "plpgsql"
    for arg in body.get("args") or []:
        item = _node(arg)[1]
        if item.get("defname") == "language":
            language = _node(item.get("arg"))[1].get("sval", "")
    head = _Finding("DoStmt")
    head.costs(NONE)
    if language != "plpgsql":
        head.unclassified = f"a DO block in language {language} cannot be read"
        return [_result(head, line, text, set(analyzer.created), in_do=True)]
    try:
        tree = json.loads(parse_plpgsql_json(text))
    except ParseError as exc:
        raise SqlPlanError(f"cannot verify migration {name} line {line}: {_message(exc)}") from None
    inner, unreadable = [], set()
    for item in _walk(tree):
        for key, value in item.items():
            if key == "PLpgSQL_stmt_execsql":
                query = value.get("sqlstmt", {}).get("PLpgSQL_expr", {}).get("query", "")
                at = line + max(value.get("lineno", 1) - 1, 0)
                for found in _plan_text(query, name, analyzer, at):
                    found["in_do_block"] = True
                    inner.append(found)
            elif key in _UNREADABLE:
                unreadable.add(_UNREADABLE[key])
    if unreadable:
        head.unclassified = f"a DO block with {', '.join(sorted(unreadable))} cannot be read"
    inner.sort(key=lambda s: s["line"])
    return [_result(head, line, text, set(analyzer.created), in_do=True), *inner]


# Data losses that take rows with them: every row of a relation, or (partial) some of them.
ALL_ROWS_LOST = frozenset({"table", "all rows", "all rows (CASCADE)"})
SOME_ROWS_LOST = "rows"


def relations_losing_rows(statements: list[dict], partial: bool = False) -> list[str]:
    """The schema-qualified relations the statements drop or empty (and, with ``partial``, delete some rows
    from: what the row-count guard must excuse)."""
    whats = ALL_ROWS_LOST | ({SOME_ROWS_LOST} if partial else set())
    return sorted({d["relation"] for s in statements for d in s["data_loss"] if d["what"] in whats and d["relation"]})


def summarize(statements: list[dict]) -> dict:
    """The plan of one migration: counts and the statements that block or lose data."""
    return {
        "statements": len(statements),
        "destructive": [s for s in statements if s["destructive"]],
        "blocking": [s for s in statements if s["blocking"]],
        "loses_rows": relations_losing_rows(statements),
    }
