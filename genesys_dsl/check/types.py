"""The types the checker gives expressions.

Sizes inside types are symbolic (`check.dims`), written in the symbols of the unit
being checked: its dim variables (bound by input shapes) and its hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import dims


@dataclass(frozen=True)
class TensorT:
    """[batch, length, *dims]."""

    dims: tuple[dims.Size, ...]

    def show(self) -> str:
        return f"seq[{', '.join(dims.show(d) for d in self.dims)}]"


@dataclass(frozen=True)
class ScalarT:
    """An int (sizes included), float or bool, with its symbolic value when known."""

    kind: str  # "int" | "float" | "bool"
    value: dims.Size | None = None

    def show(self) -> str:
        return self.kind


@dataclass(frozen=True)
class ChoiceT:
    """A choice hyperparameter: one name out of `options`; `value` is its symbol."""

    options: tuple[str, ...]
    value: dims.Size | None = None

    def show(self) -> str:
        return f"choice in {{{', '.join(self.options)}}}"


@dataclass(frozen=True)
class CallableT:
    """A bare unit or primitive name, usable only as the value of a choice."""

    name: str

    def show(self) -> str:
        return f"the callable '{self.name}'"


@dataclass(frozen=True)
class TupleT:
    """The several outputs of a unit that declares named outputs."""

    items: tuple

    def show(self) -> str:
        return f"{len(self.items)} values ({', '.join(t.show() for t in self.items)})"


@dataclass(frozen=True)
class UnknownT:
    """The type of an expression that already has an error: silences follow-on errors."""

    def show(self) -> str:
        return "unknown"


UNKNOWN = UnknownT()

Type = TensorT | ScalarT | ChoiceT | CallableT | TupleT | UnknownT


def describe(t: Type) -> str:
    if isinstance(t, TensorT):
        return f"a tensor {t.show()}"
    if isinstance(t, ScalarT):
        return {"int": "an int", "float": "a float", "bool": "a bool"}[t.kind]
    return t.show()


def lit(name: str) -> tuple:
    """A choice option as a size-expression constant (strings are symbols there)."""
    return ("lit", name)
