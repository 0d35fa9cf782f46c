"""Every pluggy hook of genesys-dsl, typed and documented.

Plugins implement hooks with the `genesys_dsl.hookimpl` marker and are found
through the entry-point group `genesys_dsl` (see docs/plugins.md). Each hook
receives a `register` callback, in the style of simonw/llm: a plugin calls it
once per thing it contributes.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "genesys_dsl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_primitives(register: Callable) -> None:
    """Contribute primitives that specs may call.

    Call `register(primitive)` with each `genesys_dsl.ops.Primitive`, usually built
    with `genesys_dsl.ops.primitive("Name(x: seq[D], ...) -> seq[D]", family=...,
    temporal=..., summary=..., params=..., flops=...)`. Names must be unique across
    all loaded plugins.
    """
