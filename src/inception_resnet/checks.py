"""The one validator of settings: a value checked against its declared type and bounds, where it enters.

A setting declares what it accepts once, as the type annotation of a dataclass field (or of a model builder's
keyword) plus, when numbers or lengths are bounded or only some values are allowed, a :class:`Bounds` in the
field's metadata (``field(metadata={"bounds": Bounds(ge=1)})``, or :func:`bounded`). :func:`check_value`
checks one value against such a declaration and :func:`check_fields` every field of a dataclass instance,
so a field added later is checked by its annotation without further code.

What an annotation accepts: ``bool`` (true or false only), ``int`` (a whole number, not a bool, within
64 bits), ``float`` (a finite real number, not a bool), ``str``, ``dict``/``Mapping[K, V]`` (values checked as
``V``), ``list[T]``/``Sequence[T]``/``tuple[T, ...]`` (a list or tuple, items checked as ``T``),
``tuple[A, B, C]`` (exactly that many items), unions (``None`` when a member is ``None``; otherwise the
first member that fits, a list's error coming from a list member), ``Literal[...]`` and ``Any``. Numeric
bounds apply to every number a value holds (``blocks`` ``[1, 1, 100000000]`` is refused item by item).
Every refusal is a :class:`ValueError` of one line: ``<where> must be <what>, got <value>``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

INT_LIMIT = 2**63 - 1  # the largest whole number any setting may hold (torch's and numpy's int64)
_SHOWN = 80  # characters of a refused value quoted in a message


@dataclass(frozen=True)
class Bounds:
    """What a value may be besides its type: a numeric range, a set of choices, a number of items."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] = ()
    min_items: int = 0
    max_items: int | None = None

    def describe(self, integral: bool) -> str:
        """The range in words: ``at least 1``, ``>= 0``, ``lie in [0, 1)``, ``at least 0 and at most 100``."""
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None and not integral:
            return f"lie in {'[' if self.ge is not None else '('}{low:g}, {high:g}{']' if self.le is not None else ')'}"
        parts = []
        if low is not None:
            parts.append(
                f"at least {low}"
                if integral and self.ge is not None
                else f"{'>=' if self.ge is not None else '>'} {low:g}"
            )
        if high is not None:
            parts.append(
                f"at most {high}"
                if integral and self.le is not None
                else f"{'<=' if self.le is not None else '<'} {high:g}"
            )
        return " and ".join(parts)

    def admits(self, number: float) -> bool:
        """Whether ``number`` lies in the range."""
        return not (
            (self.ge is not None and number < self.ge)
            or (self.gt is not None and number <= self.gt)
            or (self.le is not None and number > self.le)
            or (self.lt is not None and number >= self.lt)
        )


NO_BOUNDS = Bounds()


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    help: str = "",
    factory: Any = dataclasses.MISSING,
    bounds: Bounds | None = None,
    **limits: Any,
) -> Any:
    """A dataclass field with a default (or a default ``factory``), a help text and :class:`Bounds` (given as
    one, ``bounds``, when declared elsewhere, or as keywords: ``ge=1``)."""
    metadata = {"help": help, "bounds": bounds or Bounds(**limits)}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def shown(value: Any) -> str:
    """A value as a message quotes it: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "...]"


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return origin in (list, tuple, collections.abc.Sequence, typing.Sequence)


def check_value(where: str, value: Any, annotation: Any, bounds: Bounds = NO_BOUNDS) -> None:
    """A ValueError naming ``where`` unless ``value`` fits ``annotation`` and ``bounds``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        bounds = next((b for b in extra if isinstance(b, Bounds)), bounds)
        origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return
    if origin in (typing.Union, types.UnionType):
        members = list(typing.get_args(annotation))
        if value is None and type(None) in members:
            return
        members = [m for m in members if m is not type(None)]
        members.sort(key=lambda m: _is_sequence_type(m) != _is_list(value))  # a list is judged as a list
        first_error = None
        for member in members:
            try:
                check_value(where, value, member, bounds)
                return
            except ValueError as error:
                first_error = first_error or error
        raise first_error or ValueError(f"{where} has an unsupported type annotation {annotation!r}")
    if origin is typing.Literal:
        bounds = dataclasses.replace(bounds, choices=typing.get_args(annotation))
        annotation = object
    elif annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {shown(value)}")
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{where} must be a whole number, got {shown(value)}")
        if abs(value) > INT_LIMIT and bounds.le is None and bounds.lt is None:
            raise ValueError(f"{where} is too large (at most {INT_LIMIT}), got {value}")
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be a number, got {shown(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value}")
    elif annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a text, got {shown(value)}")
    elif annotation in (dict, collections.abc.Mapping) or origin in (dict, collections.abc.Mapping):
        if not isinstance(value, collections.abc.Mapping):
            raise ValueError(f"{where} must be a mapping of KEY: VALUE, got {shown(value)}")
        key_type, item_type = typing.get_args(annotation) or (Any, Any)
        for key, item in value.items():
            check_value(f"{where} key {key!r}", key, key_type)
            check_value(f"{where}.{key}", item, item_type, bounds)
        return
    elif annotation in (list, tuple) or _is_sequence_type(annotation):
        _check_items(where, value, annotation, bounds)
        return
    elif dataclasses.is_dataclass(annotation):
        if not isinstance(value, annotation):
            raise ValueError(
                f"{where} must be a mapping of the keys {', '.join(_field_names(annotation))}, got {shown(value)}"
            )
        check_fields(value, where)
        return
    if bounds.choices and value not in bounds.choices:
        raise ValueError(f"{where} must be one of {', '.join(map(str, bounds.choices))}, got {shown(value)}")
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and not bounds.admits(value):
        raise ValueError(f"{where} must {_verb(bounds.describe(annotation is int))}, got {value}")


def _verb(description: str) -> str:
    return description if description.startswith("lie ") else "be " + description


def _check_items(where: str, value: Any, annotation: Any, bounds: Bounds) -> None:
    if not _is_list(value):
        raise ValueError(f"{where} must be a list, got {shown(value)}")
    members = typing.get_args(annotation)
    fixed = typing.get_origin(annotation) is tuple and members and members[-1] is not Ellipsis
    if fixed and len(members) != len(value):
        raise ValueError(f"{where} must have {len(members)} entries, got {len(value)}: {shown(list(value))}")
    if len(value) < bounds.min_items:
        raise ValueError(f"{where} must hold at least {bounds.min_items} item(s), got {shown(list(value))}")
    if bounds.max_items is not None and len(value) > bounds.max_items:
        raise ValueError(f"{where} must hold at most {bounds.max_items} items, got {len(value)}")
    item_bounds = dataclasses.replace(bounds, min_items=0, max_items=None)
    for index, item in enumerate(value):
        member = members[index] if fixed else (members[0] if members else Any)
        check_value(f"{where}[{index}]", item, member, item_bounds)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def field_bounds(field: dataclasses.Field) -> Bounds:
    """The :class:`Bounds` a field declares (none: :data:`NO_BOUNDS`)."""
    return field.metadata.get("bounds", NO_BOUNDS)


def check_fields(instance: Any, where: str = "", *, skip: tuple[str, ...] = ()) -> None:
    """Check every field of a dataclass instance against its annotation and bounds (``skip``: names to leave)."""
    hints = typing.get_type_hints(type(instance), include_extras=True)
    prefix = f"{where}." if where else ""
    for field in dataclasses.fields(instance):
        if field.name not in skip:
            check_value(prefix + field.name, getattr(instance, field.name), hints[field.name], field_bounds(field))


def build(cls: type, values: Any, where: str) -> Any:
    """A dataclass ``cls`` from a mapping read from a file or the command line: unknown keys, a value that is
    not a mapping, nested dataclass fields given as mappings, then every field checked (:func:`check_fields`)."""
    if not isinstance(values, collections.abc.Mapping):
        raise ValueError(f"{where} must be a mapping of the keys {', '.join(_field_names(cls))}, got {shown(values)}")
    names = _field_names(cls)
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}")
    values = dict(values)
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, collections.abc.Mapping):
            values[name] = build(hints[name], value, f"{where}.{name}")
    instance = cls(**values)
    check_fields(instance, where)
    return instance
