"""Row-level contract checks, generated as one SQL query per (kind, source shape).

The query reads a relation `batch` (a file's record batch, with `_row` and `_line`) and returns each
row typed, with `_reason` (a short code such as `out_of_range:confidence`, NULL when the row is valid),
`_detail` (the message a person reads, echoing the value), `_row_hash`, `item_key`, `_extra` and `_raw`.
Identifiers come only from the contract; the configured segments come from a temp table `_segments`
that the caller fills with a bound parameter, so no value is ever formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from trustramp.contract import (
    EXTRA,
    FAILED_STATUSES,
    ITEM_KEY,
    ColType,
    Column,
    Schema,
)
from trustramp.ingest.readers import FILE, JSON_LINE, LINE, MALFORMED, ROW
from trustramp.store.columns import DUCK_TYPES, lake_columns  # noqa: F401 - their old home
from trustramp.store.duck import quote_ident, quote_literal

FEATURE_NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
"""Feature names become partition folder names: no separators, no dots first, bounded length."""
FUTURE_TOLERANCE = "INTERVAL 1 DAY"
EARLIEST = "1970-01-01"
"""Timestamps before this are quarantined: the lake's date partitions hold plausible dates only
(a BC or `-infinity` timestamp cannot become a partition folder or a Python date)."""
MAX_VALUE_ECHO = 80


def _echo(expr: str) -> str:
    """A value quoted for a message, cut to a readable length."""
    return (
        f"'''' || CASE WHEN length({expr}) > {MAX_VALUE_ECHO} "
        f"THEN left({expr}, {MAX_VALUE_ECHO}) || '…' ELSE {expr} END || ''''"
    )


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _text_expr(
    name: str, source_types: Mapping[str, pa.DataType], fmt: str, ref: str | None = None
) -> str:
    """The column's value as trimmed text, NULL when absent or blank (`ref`: how to name it)."""
    if fmt == "jsonl":
        path = quote_literal("$." + name.replace("'", ""))
        raw = f"json_extract_string({JSON_LINE}, {path})"
        return f"NULLIF(trim(CASE WHEN _json_ok THEN {raw} END), '')"
    if name not in source_types:
        return "CAST(NULL AS VARCHAR)"
    ident = ref or quote_ident(name)
    t = source_types[name]
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return f"NULLIF(trim({ident}), '')"
    if pa.types.is_timestamp(t):
        return f"strftime(CAST({ident} AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%S.%fZ')"
    return f"NULLIF(trim(CAST({ident} AS VARCHAR)), '')"


def _native(name: str, source_types: Mapping[str, pa.DataType], fmt: str) -> bool:
    """A typed Parquet number or timestamp: present exactly when not NULL, and its text (costly
    to make for every row) is needed only to echo it in a quarantined row's message."""
    t = source_types.get(name)
    return fmt == "parquet" and t is not None and (_numeric(t) or pa.types.is_timestamp(t))


def _typed_expr(col: Column, text: str, source_types: Mapping[str, pa.DataType], fmt: str) -> str:
    ident = quote_ident(col.name)
    native = fmt == "parquet" and col.name in source_types
    t = source_types.get(col.name)
    if col.type is ColType.STRING:
        # A nested value (JSON object or array, Parquet list/struct/map) is not text: NULL here
        # makes the row `unparseable:<column>` instead of landing the value stringified.
        if fmt == "jsonl":
            path = quote_literal("$." + col.name.replace("'", ""))
            return (
                f"CASE WHEN _json_ok AND json_type({JSON_LINE}, {path}) IN ('OBJECT', 'ARRAY') "
                f"THEN NULL ELSE {text} END"
            )
        if native and t is not None and pa.types.is_nested(t):
            return "CAST(NULL AS VARCHAR)"
        return text
    if col.type is ColType.ENUM:
        return f"lower({text})"
    if col.type is ColType.JSON:
        return (
            f"CASE WHEN json_valid({text}) THEN "
            f"CASE WHEN json_type({text}) = 'OBJECT' THEN {text} END END"
        )
    if col.type in (ColType.FLOAT, ColType.INT):
        if native and t is not None and _numeric(t):
            return f"CAST({ident} AS DOUBLE)"
        return f"TRY_CAST({text} AS DOUBLE)"
    if col.type is ColType.TIMESTAMP:
        if native and t is not None and pa.types.is_timestamp(t):
            return f"CAST({ident} AS TIMESTAMPTZ)"
        return f"TRY_CAST({text} AS TIMESTAMPTZ)"
    raise AssertionError(col.type)


def _checks(
    col: Column, schema: Schema, text: str | None = None, echo: str | None = None
) -> list[tuple[str, str, str]]:
    """(condition, reason, detail) triples for one column, in the order they are tried.

    `text` is what the conditions test for presence (default `s_<name>`, the value as text);
    `echo` is the text that a message quotes (default: `text`). Details are evaluated only for
    the rows that fail, so an `echo` that is costly to compute costs nothing on good rows.
    """
    n = col.name
    s, v = text or f"s_{n}", f"v_{n}"
    e = echo or s
    out: list[tuple[str, str, str]] = []
    if col.required is True:
        out.append((f"{s} IS NULL", f"missing:{n}", f"'missing required value: {n}'"))
    elif col.required == "unless_failed":
        out.append(
            (
                f"{s} IS NULL AND coalesce(v_status, 'ok') NOT IN "
                f"({', '.join(quote_literal(x) for x in FAILED_STATUSES)})",
                f"missing:{n}",
                f"'missing required value: {n} (status is not error/timeout)'",
            )
        )
    kind_word = {
        ColType.STRING: "a text value",
        ColType.FLOAT: "a number",
        ColType.INT: "an integer",
        ColType.TIMESTAMP: "an ISO 8601 timestamp",
        ColType.JSON: "a JSON object",
    }.get(col.type)
    if kind_word:
        out.append(
            (
                f"{s} IS NOT NULL AND {v} IS NULL",
                f"unparseable:{n}",
                f"'{n} ' || {_echo(e)} || ' is not {kind_word}'",
            )
        )
    if col.type is ColType.JSON:
        out.append(
            (
                f"{v} IS NOT NULL AND {_repeats_key(v)}",
                f"duplicate_key:{n}",
                f"'{n} ' || {_echo(e)} || ' repeats a key (parsers differ on which value counts)'",
            )
        )
    if col.type in (ColType.FLOAT, ColType.INT):
        out.append(
            (
                f"{v} IS NOT NULL AND NOT isfinite({v})",
                f"not_finite:{n}",
                f"'{n} ' || {_echo(e)} || ' is not a finite number'",
            )
        )
        lo = "-inf" if col.low is None else repr(col.low)
        hi = "inf" if col.high is None else repr(col.high)
        conds = []
        if col.low is not None:
            conds.append(f"{v} < {col.low!r}")
        if col.high is not None:
            conds.append(f"{v} > {col.high!r}")
        if conds:
            bounds = f"[{_fmt(col.low, lo)}, {_fmt(col.high, hi)}]"
            out.append(
                (
                    f"{v} IS NOT NULL AND ({' OR '.join(conds)})",
                    f"out_of_range:{n}",
                    f"'{n} ' || {_echo(e)} || ' is outside {bounds}'",
                )
            )
    if col.type is ColType.INT:
        out.append(
            (
                f"{v} IS NOT NULL AND {v} <> round({v})",
                f"unparseable:{n}",
                f"'{n} ' || {_echo(e)} || ' is not an integer'",
            )
        )
    if col.type is ColType.ENUM and col.enum:
        allowed = ", ".join(quote_literal(e) for e in col.enum)
        out.append(
            (
                f"{v} IS NOT NULL AND {v} NOT IN ({allowed})",
                f"unknown_value:{n}",
                f"'{n} ' || {_echo(e)} || ' is not one of {', '.join(col.enum)}'",
            )
        )
    if col.type is ColType.TIMESTAMP and text is None:  # text, not a typed Parquet timestamp
        out.append(
            (
                f"{v} IS NOT NULL AND {_bad_offset(f'o_{n}')}",
                f"unparseable:{n}",
                f"'{n} ' || {_echo(e)} || ' has an impossible UTC offset (accepted: "
                f"{OFFSET_RANGE}, minutes below 60)'",
            )
        )
    if col.type is ColType.TIMESTAMP:
        out.append(
            (
                f"{v} IS NOT NULL AND {v} > now() + {FUTURE_TOLERANCE}",
                f"future_timestamp:{n}",
                f"'{n} ' || {_echo(e)} || ' is in the future'",
            )
        )
        out.append(
            (
                f"{v} IS NOT NULL AND {v} < TIMESTAMPTZ '{EARLIEST} 00:00:00+00'",
                f"out_of_range:{n}",
                f"'{n} ' || {_echo(e)} || ' is before {EARLIEST}'",
            )
        )
    if n == "segment":
        out.append(
            (
                f"{v} IS NOT NULL AND {v} NOT IN (SELECT s FROM _segments)",
                "unknown_value:segment",
                f"'segment ' || {_echo(e)} || ' is not one of the configured segments'",
            )
        )
    if n == schema.feature_column:
        out.append(
            (
                f"{v} IS NOT NULL AND NOT regexp_full_match({v}, "
                f"{quote_literal(FEATURE_NAME_PATTERN)})",
                "invalid_name:feature",
                f"'feature ' || {_echo(e)} || ' is not a valid name (letters, digits, . _ -; "
                f"not starting with . or -; at most 100 characters)'",
            )
        )
    return out


OFFSET_RANGE = "-12:00 to +14:00"
"""The UTC offsets in use on Earth. DuckDB reads any two digits as hours (`+99`, `+25:00`) and
carries minutes over (`+05:75`), which moves a row to another day: such values are quarantined."""
_OFFSET_MINUTES = (-12 * 60, 14 * 60)
_OFFSET_RE = (
    r":[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?\s*([+-])([0-9]{2}):?([0-9]{2})?(?::?([0-9]{2}))?$"
)
"""A trailing offset after a time of day (`HH:MM[:SS[.f]]`), so that a date's `-01` is not one."""


def offset_parts(text: str) -> str:
    """SQL: the trailing UTC offset of the text `text`, as a struct of its parts (sign, hours,
    minutes, seconds; empty strings when there is none). One regular expression per value."""
    return f"regexp_extract({text}, {quote_literal(_OFFSET_RE)}, ['sign', 'h', 'm', 'sec'])"


def _bad_offset(o: str) -> str:
    """SQL: the offset parts `o` (see `offset_parts`) are an offset outside `OFFSET_RANGE`, or
    have minutes or seconds of 60 or more."""

    def part(name: str) -> str:
        return f"coalesce(CAST(nullif({o}.{name}, '') AS INTEGER), 0)"

    lo, hi = _OFFSET_MINUTES
    sign = f"CASE WHEN {o}.sign = '-' THEN -1 ELSE 1 END"
    return (
        f"({o}.h <> '' AND NOT ({part('m')} < 60 AND {part('sec')} < 60 AND "
        f"{sign} * ({part('h')} * 60 + {part('m')}) BETWEEN {lo} AND {hi}))"
    )


def _fmt(x: float | None, default: str) -> str:
    if x is None:
        return default
    return f"{x:g}"


def validation_sql(
    schema: Schema,
    source_types: Mapping[str, pa.DataType],
    fmt: str,
    source: str = "batch",
    names: Mapping[str, str] | None = None,
) -> str:
    """The checking query for one batch shape (reads `source`, by default the registered `batch`,
    and the temp table `_segments`).

    `names` maps the source's data columns to the file's names for them (the readers name data
    columns by position, see `readers.source_names`); None means every column of `source_types`
    not starting with `_` is a data column under its own name. A data column named "" (unnamed,
    e.g. after a trailing comma) must be empty; it is never an extra.

    Three steps, so that good rows pay only for what they keep: `cols` types the values (source
    columns are carried on under generated names `_c<i>`, which no header can collide with),
    `judged` finds the first failed check, and the result adds the message and the raw copy only
    to the rows that failed.
    """
    if fmt == "jsonl":
        names = {}
    elif names is None:
        names = {c: c for c in source_types if not c.startswith("_")}
    data_cols = list(names)
    refs = {c: f"_c{i}" for i, c in enumerate(data_cols)}
    # Contract columns by their contract name: the file's name equals it exactly (a name equal
    # to it but for case fails the file before this; see `case_mismatches`).
    contract = {names[c]: c for c in data_cols if names[c] in schema.names}
    aliases = "".join(
        f", {quote_ident(c)} AS {quote_ident(n)}" for n, c in contract.items() if c != n
    )
    source_types = {n: source_types[c] for n, c in contract.items()} | {
        k: v for k, v in source_types.items() if k.startswith("_") and k not in names
    }
    texts = {c.name: _text_expr(c.name, source_types, fmt) for c in schema.columns}
    keep = [FILE] if FILE in source_types else []
    inner = [*keep, f"{ROW}", f"{LINE}"]
    if fmt == "jsonl":
        inner += [
            JSON_LINE,
            "_json_ok",
            f"CASE WHEN _json_ok THEN json_keys({JSON_LINE}) END AS _keys",
        ]
    if MALFORMED in source_types:
        inner.append(MALFORMED)
    if fmt == "csv":
        inner.append(
            "("
            + " AND ".join(f"coalesce({quote_ident(c)}, '') = ''" for c in data_cols)
            + ") AS _blank"
        )
    inner += [f"{quote_ident(c)} AS {refs[c]}" for c in data_cols]
    whens = list(_pre_checks(source_types, fmt, names, refs))
    for c in schema.columns:
        if _native(c.name, source_types, fmt):
            ref = refs[contract[c.name]]
            echo = _text_expr(c.name, source_types, fmt, ref=ref)
            whens.extend(_checks(c, schema, text=ref, echo=echo))
        else:
            inner.append(f"{texts[c.name]} AS s_{c.name}")
            if c.type is ColType.TIMESTAMP:
                inner.append(f"{offset_parts(f's_{c.name}')} AS o_{c.name}")
            whens.extend(_checks(c, schema))
    for c in schema.columns:
        inner.append(f"{_typed_expr(c, texts[c.name], source_types, fmt)} AS v_{c.name}")
    inner.append(f"{_extra_expr(schema, names, fmt)} AS {EXTRA}")
    reason = "CASE " + " ".join(f"WHEN {cond} THEN '{r}'" for cond, r, _ in whens) + " END"
    detail = "CASE " + " ".join(f"WHEN {cond} THEN {d}" for cond, _, d in whens) + " END"

    typed: dict[str, str] = {}
    for c in schema.columns:
        v = f"v_{c.name}"
        if c.type is ColType.INT:
            v = f"CAST({v} AS BIGINT)"
        if c.default is not None:
            v = f"coalesce({v}, {quote_literal(c.default)})"
        typed[c.name] = v
    json_ok = ""
    if fmt == "jsonl":
        json_ok = (
            f", coalesce(CASE WHEN json_valid({JSON_LINE}) "
            f"THEN json_type({JSON_LINE}) = 'OBJECT' END, false) AS _json_ok"
        )
    item = "v_item_id" if "item_id" in schema.names else "NULL"
    outputs = ", ".join(f"{v} AS {quote_ident(n)}" for n, v in typed.items())
    return f"""
WITH src AS (SELECT *{aliases}{json_ok} FROM {source}),
cols AS (SELECT {", ".join(inner)} FROM src),
judged AS (SELECT *, {reason} AS _reason FROM cols)
SELECT {"".join(k + ", " for k in keep)}{ROW}, {LINE}, {outputs}, {EXTRA}, _reason,
       CASE WHEN _reason IS NOT NULL THEN {detail} END AS _detail,
       md5_number_lower({item}) AS {ITEM_KEY},
       CASE WHEN _reason IS NOT NULL THEN left({_raw_expr(names, fmt, refs)}, 4096) END
         AS _raw
FROM judged
"""


def row_hash_sql(schema: Schema, alias: str) -> str:
    """The hash of a row's contract values (typed, as text) that tells an identical repeat from a
    conflict; `alias` names the relation holding the typed columns (checked rows or the lake).

    Ingest computes it only for rows whose id occurs more than once (in the run or the lake):
    for every row it would cost more than the rest of the row checks together.
    """
    hashed = ", ".join(
        f"coalesce(CAST({alias}.{quote_ident(c.name)} AS VARCHAR), '\\N')" for c in schema.columns
    )
    return f"md5_number_lower(concat_ws(chr(31), {hashed}))"


def _pre_checks(
    source_types: Mapping[str, pa.DataType],
    fmt: str,
    names: Mapping[str, str],
    refs: Mapping[str, str],
) -> list[tuple[str, str, str]]:
    """Checks of the row as a whole, before any column: malformed CSV rows, bad JSON lines,
    values in unnamed columns."""
    if fmt == "jsonl":
        return [
            (f"{JSON_LINE} IS NULL", "invalid_utf8", "'the line is not valid UTF-8 text'"),
            (
                "NOT _json_ok",
                "malformed_json",
                f"'the line is not a JSON object: ' || {_echo(JSON_LINE)}",
            ),
            (
                "len(_keys) <> len(list_distinct(_keys))",
                "duplicate_key",
                f"'the object repeats a key (parsers differ on which value counts): ' || "
                f"{_echo(JSON_LINE)}",
            ),
        ]
    checks = []
    if MALFORMED in source_types:
        checks.append(
            (
                f"{MALFORMED} IS NOT NULL",
                "malformed_row",
                f"'the row has ' || {MALFORMED} || ' fields, the header has {len(names)}'",
            )
        )
    for i, c in enumerate(names):
        if names[c] == "":
            ref = refs[c]
            value = f"CAST({ref} AS VARCHAR)"
            checks.append(
                (
                    f"coalesce({value}, '') <> ''",
                    "malformed_row",
                    f"'the row has a value in column {i + 1}, which has no name in the header: ' "
                    f"|| {_echo(value)}",
                )
            )
    if fmt == "csv":
        checks.append(("_blank", "empty_row", "'the row is empty'"))
    return checks


def _repeats_key(expr: str) -> str:
    """True when the JSON object `expr` has a key twice at its top level."""
    return f"len(json_keys({expr})) <> len(list_distinct(json_keys({expr})))"


def _extra_expr(schema: Schema, names: Mapping[str, str], fmt: str) -> str:
    if fmt == "jsonl":
        patch = "{" + ", ".join(f'"{n}": null' for n in schema.names) + "}"
        merged = f"json_merge_patch({JSON_LINE}, {quote_literal(patch)})"
        return f"CASE WHEN _json_ok AND {merged} <> '{{}}' THEN CAST({merged} AS VARCHAR) END"
    extras = [(c, n) for c, n in names.items() if n not in schema.names and n != ""]
    if not extras:
        return "CAST(NULL AS VARCHAR)"
    # json_object, not a struct: its keys are values, so names that differ only by case (or
    # that are not valid identifiers) stay distinct.
    fields = ", ".join(f"{quote_literal(n)}, {quote_ident(c)}" for c, n in extras)
    return f"CAST(json_object({fields}) AS VARCHAR)"


def _raw_expr(names: Mapping[str, str], fmt: str, refs: Mapping[str, str]) -> str:
    """The row as read (JSON of its columns), from the carried-on source columns `refs`."""
    if fmt == "jsonl":
        return f"coalesce({JSON_LINE}, '<not UTF-8>')"
    fields = ", ".join(f"{quote_literal(names[c])}, {refs[c]}" for c in refs)
    return f"CAST(json_object({fields}) AS VARCHAR)"


def case_mismatches(schema: Schema, columns: Sequence[str]) -> list[tuple[str, str]]:
    """(file's name, contract name) of the columns that match a contract column only by case."""
    lower = {n.lower(): n for n in schema.names}
    return [(c, lower[c.lower()]) for c in columns if c not in schema.names and c.lower() in lower]


def missing_columns(schema: Schema, columns: Sequence[str]) -> list[str]:
    """Required contract columns absent from a file's columns (JSON Lines are checked per row)."""
    present = set(columns)
    return [c for c in schema.required if c not in present]
