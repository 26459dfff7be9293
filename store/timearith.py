"""Epoch seconds of a stored UTC datetime, in SQL, on SQLite and PostgreSQL alike."""

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class epoch_seconds(FunctionElement):
    """Seconds since 1970-01-01 UTC of a naive-UTC timestamp column."""

    type = Float()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_seconds_sqlite(element, compiler, **kw) -> str:
    # strftime keeps whole seconds exact and milliseconds in %f; julianday() floats drift by tens of µs
    value = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {value}) AS REAL) + CAST(strftime('%f', {value}) AS REAL) - CAST(strftime('%S', {value}) AS REAL))"


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
