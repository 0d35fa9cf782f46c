"""Building IR nodes from values the parser has already checked, without validation.

The parser builds about two hundred nodes (spans included) per seed spec, each from
a token the grammar matched or a node it built, so there is nothing to validate.
pydantic's `model_construct` skips validation but still goes through alias handling
and a default look-up per field on every call. `constructor(cls)` gives a function
that does what `model_construct` does for the IR's models (plain fields, no aliases,
no extra fields, no `model_post_init`), with the defaults looked up once per class:
half the time per node, about a tenth of a parse (benchmarks/bench_frontend.py).
tests/test_fast_paths.py checks both build equal nodes.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_MISSING: Any = object()  # a field the caller must give, or a default that must be copied per node


def _fast_path_applies(cls: type[BaseModel]) -> bool:
    fields = cls.__pydantic_fields__
    return (
        not cls.__pydantic_post_init__  # private attributes (Design) are set up there
        and not cls.__pydantic_root_model__
        and cls.model_config.get("extra") != "allow"
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
    )


def constructor(cls: type[M]) -> Callable[..., M]:
    """`cls.model_construct`, faster: no validation, every given field set as is.

    Falls back to `model_construct` for models the fast path does not cover. Unlike
    `model_construct`, a misspelt or missing required field is a TypeError (a bug in
    the caller), not silently dropped."""
    if not _fast_path_applies(cls):
        return cls.model_construct
    fields = cls.__pydantic_fields__
    # Every field in declaration order (so __dict__, and repr, read as model_construct's);
    # immutable defaults are filled in here, the rest when a node is made.
    template: dict[str, Any] = {}
    for name, f in fields.items():
        default = f.default
        immutable = not f.is_required() and f.default_factory is None and (
            default is None or isinstance(default, (str, int, float, bool, tuple, frozenset)))
        template[name] = default if immutable else _MISSING
    names = frozenset(fields)
    needed = frozenset(n for n, v in template.items() if v is _MISSING)
    new = cls.__new__
    set_attribute = object.__setattr__

    def make(**values: Any) -> M:
        if not names >= values.keys():
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(values.keys() - names))}")
        data = template.copy()
        data.update(values)  # keys already present: declaration order is kept
        if not values.keys() >= needed:
            for name in needed - values.keys():
                f = fields[name]
                if f.is_required():
                    raise TypeError(f"{cls.__name__} needs field '{name}'")
                data[name] = f.get_default(call_default_factory=True, validated_data=data)
        node = new(cls)
        set_attribute(node, "__dict__", data)
        set_attribute(node, "__pydantic_fields_set__", set(values))
        set_attribute(node, "__pydantic_extra__", None)
        set_attribute(node, "__pydantic_private__", None)
        return node

    make.__name__ = make.__qualname__ = f"construct_{cls.__name__}"
    return make
