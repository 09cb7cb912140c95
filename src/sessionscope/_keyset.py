"""The order of a keyset listing: its key columns, checked once, and the WHERE clause of
"the rows after these key values"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, and_, or_
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.schema import UniqueConstraint

from ._cursor import KeyCodec, codec_for
from ._errors import ConfigurationError


@dataclass(frozen=True)
class Key:
    """One column of the order, its direction, and how its values go into cursors."""

    column: ColumnElement[Any]
    descending: bool
    codec: KeyCodec


def keys_of(order_by: Sequence[Any]) -> tuple[Key, ...]:
    """The keys of ``Paginator(*order_by)``; `ConfigurationError` for an order that cannot
    be a keyset."""
    if not order_by:
        raise ConfigurationError("a Paginator needs at least one column to order by")
    keys = []
    for item in order_by:
        descending = False
        element = item
        if isinstance(item, UnaryExpression) and item.modifier in (
            operators.asc_op,
            operators.desc_op,
        ):
            descending = item.modifier is operators.desc_op
            element = item.element
        column = getattr(element, "expression", element)
        if not isinstance(column, Column):
            raise ConfigurationError(
                f"cannot order a keyset listing by {item!r}: order by mapped columns "
                "(Model.column, or Model.column.desc())"
            )
        if column.nullable:
            raise ConfigurationError(
                f"cannot order a keyset listing by {column.table.name}.{column.name}: it is "
                "nullable, and NULLs have no place in a keyset order; use NOT NULL columns"
            )
        name = f"{column.table.name}.{column.name}"
        try:
            codec = codec_for(name, column.type)
        except TypeError as error:
            raise ConfigurationError(str(error)) from None
        keys.append(Key(column, descending, codec))
    require_unique(keys)
    return tuple(keys)


def require_unique(keys: Sequence[Key]) -> None:
    """The order must be total: rows with equal keys would be skipped or repeated."""
    columns = [key.column for key in keys if isinstance(key.column, Column)]
    names = {(column.table.name, column.name) for column in columns}
    for column in columns:
        table = column.table
        primary_key = {(table.name, c.name) for c in table.primary_key.columns}
        single_uniques = [
            constraint
            for constraint in getattr(table, "constraints", ())
            if isinstance(constraint, UniqueConstraint) and len(constraint.columns) == 1
        ]
        if (
            (primary_key and primary_key <= names)
            or column.unique
            or any(column.name in constraint.columns for constraint in single_uniques)
        ):
            return
    raise ConfigurationError(
        "the order of a keyset listing must end in a unique tiebreaker: add the primary key "
        "(or a unique column) as the last column to order by, e.g. "
        "Paginator(Item.created_at, Item.id)"
    )


def rows_after(keys: Sequence[Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the paginator's order: (k1 > v1) OR (k1 = v1 AND
    k2 > v2) OR ..., each comparison flipped for a descending key."""
    alternatives = []
    for position, key in enumerate(keys):
        equal = [
            earlier.column == value for earlier, value in zip(keys[:position], values, strict=False)
        ]
        beyond = key.column < values[position] if key.descending else key.column > values[position]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)
