"""Epoch seconds of a stored UTC datetime, in SQL, on SQLite and PostgreSQL alike."""

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

UNIX_EPOCH_JULIAN_DAY = 2440587.5  # 1970-01-01 00:00 UTC


class epoch_seconds(FunctionElement):
    """Seconds since 1970-01-01 UTC of a naive-UTC timestamp column."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element, compiler, **kw) -> str:
    # SQLite keeps a time as whole milliseconds of Julian day; julianday() returns them as a float of days, a few
    # hundredths of a millisecond off, so rounding gives them back exactly. (strftime's '%s' rounds to the millisecond
    # while '%S' truncates: their sum read 00:00:00.9995 as two seconds after midnight; one date parse, not three.)
    value = compiler.process(element.clauses, **kw)
    return f"(ROUND((julianday({value}) - {UNIX_EPOCH_JULIAN_DAY}) * 86400000) / 1000.0)"


@compiles(epoch_seconds, "postgresql")
def _epoch_seconds_postgresql(element, compiler, **kw) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


class seconds_between(FunctionElement):
    """Seconds from the second naive-UTC timestamp to the first (later − earlier), as a float."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element, compiler, **kw) -> str:
    later, earlier = (epoch_seconds(clause) for clause in element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(seconds_between, "postgresql")
def _seconds_between_postgresql(element, compiler, **kw) -> str:
    later, earlier = element.clauses
    # date_part on the interval is a double precision: no numeric arithmetic per row (EXTRACT gives numeric)
    return f"date_part('epoch', {compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"
