"""Reusing unit analyses and scale walks across the designs genetic programming makes.

An offspring shares most of its units with its parent: an operator edits one unit
(or one call site), and the rest are copies. Checking it from scratch re-analyses
every unit and re-walks every unit instance at every scale. This module remembers,
across checks, the analyses and walks that found nothing to report, and hands them
back when an identical unit comes again:

- an analysis is keyed by the unit's full JSON text and the registry, and reused
  only when every name it resolved (callees, choice options, names of units and
  primitives) resolves to the same thing in the new design: a unit with the same
  signature, or the same primitive object;
- a walk is keyed by the unit's *deep identity* (its text and, recursively, that of
  everything it calls), the sizes bound to its symbols, the context length, and
  whether costs are summed.

Only span-less designs use it (what GP builds; `check` reports their problems
through their canonical text anyway), and only clean results are stored, so a
reused result never carries a diagnostic or a source location. Results are exactly
those a fresh check gives (tests/test_check.py compares them); the stores are
bounded and emptied when full. Literal nodes are assumed to hold values of their
declared type (int in IntLit, float in FloatLit), as every validating constructor
guarantees: the JSON text does not tell 1 from 1.0 or true in those fields.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from typing import Any, NamedTuple

from pydantic import TypeAdapter

from .. import ir
from ..ops.registry import Registry
from .analyze import Callees, UnitInfo, is_hyper

MAX_ANALYSES = 4096
MAX_WALKS = 65536

_SIGNATURE = TypeAdapter(tuple[list[ir.Param], list[ir.Output]])


class _Analysis(NamedTuple):
    info: UnitInfo
    depends: tuple[tuple[str, Any], ...]  # name -> fingerprint of what it resolved to
    pins: tuple  # the primitives fingerprints name by id(), kept alive so no id is reused


_lock = threading.Lock()
_analyses: dict[tuple[int, bytes], _Analysis] = {}
_walks: dict[tuple, Any] = {}
_registries: dict[int, Registry] = {}  # registries named in keys by id(), kept alive


def clear() -> None:
    """Forget every stored analysis and walk (benchmarks measure cold checks with it)."""
    with _lock:
        _analyses.clear()
        _walks.clear()
        _registries.clear()


def sizes() -> tuple[int, int]:
    """How many analyses and walks are stored."""
    return len(_analyses), len(_walks)


def _text(node: Any) -> bytes | None:
    try:
        return node.__pydantic_serializer__.to_json(node, warnings=False)
    except Exception:  # noqa: BLE001 - a tree too malformed to serialise is simply not reused
        return None


class Session:
    """Reuse for the check of one span-less design."""

    def __init__(self, design: ir.Design, registry: Registry, callees: Callees):
        self.design = design
        self.registry = registry
        self.callees = callees
        self.texts: dict[str, bytes | None] = {}  # unit name -> JSON text
        self.depends: dict[str, tuple[str, ...]] = {}  # unit name -> names its analysis resolved
        self._fingerprints: dict[str, Any] = {}
        self._deep: dict[str, bytes | None] = {}

    # -- analyses
    def _key(self, unit: ir.Unit) -> tuple[int, bytes] | None:
        text = self.texts.get(unit.name)
        if text is None:
            text = self.texts[unit.name] = _text(unit)
        return None if text is None else (id(self.registry), text)

    def fingerprint(self, name: str) -> Any:
        """What `name` resolves to when called in this design, as comparable data."""
        if name not in self._fingerprints:
            callee = self.callees.get(name)
            if callee is None:
                found: Any = None
            elif callee.primitive is not None:
                found = ("primitive", id(callee.primitive))
            else:
                found = ("unit", _SIGNATURE.dump_json((callee.params, callee.outputs), warnings=False))
            self._fingerprints[name] = found
        return self._fingerprints[name]

    def analysis(self, unit: ir.Unit) -> UnitInfo | None:
        """A stored analysis of an identical unit whose names resolve the same way here,
        rebound to `unit`; None if there is none."""
        key = self._key(unit)
        found = _analyses.get(key) if key is not None else None
        if found is None or any(self.fingerprint(n) != fp for n, fp in found.depends):
            return None
        self.depends[unit.name] = tuple(n for n, _ in found.depends)
        info = copy.copy(found.info)  # keeps the compiled sizes, which every reuse shares
        info.unit = unit
        info.hyper = {p.name: p for p in unit.params if is_hyper(p)}
        return info

    def store(self, unit: ir.Unit, info: UnitInfo, depends: set[str]) -> None:
        """Remember a clean analysis of `unit`, which resolved the names `depends`."""
        names = tuple(sorted(depends))
        self.depends[unit.name] = names
        key = self._key(unit)
        if key is None:
            return
        fingerprints = tuple((n, self.fingerprint(n)) for n in names)
        pins = tuple(c.primitive for n in names if (c := self.callees.get(n)) is not None and c.primitive)
        with _lock:
            if len(_analyses) >= MAX_ANALYSES:
                _analyses.clear()
            _registries[id(self.registry)] = self.registry
            _analyses[key] = _Analysis(info, fingerprints, pins)

    # -- walks
    def deep_id(self, name: str, visiting: frozenset = frozenset()) -> bytes | None:
        """A digest of the unit `name` and everything it calls; None in a cycle or
        when a unit cannot be serialised."""
        if name in self._deep:
            return self._deep[name]
        unit = self.design.unit(name) or (self.design.block if name == ir.BLOCK_NAME else None)
        if unit is None or name in visiting or name not in self.depends:
            return None
        key = self._key(unit)
        if key is None:
            return None
        digest = hashlib.blake2b(key[1], digest_size=16)
        for dep in self.depends[name]:
            callee = self.callees.get(dep)
            if callee is not None and callee.unit is not None:
                inner = self.deep_id(dep, visiting | {name})
                if inner is None:
                    self._deep[name] = None
                    return None
                digest.update(b"u" + dep.encode() + inner)
            else:
                digest.update(b"p" + dep.encode() + repr(self.fingerprint(dep)).encode())
        self._deep[name] = digest.digest()
        return self._deep[name]

    def walk_key(self, name: str, env_key: tuple, context_length: int, costs: bool) -> tuple | None:
        deep = self.deep_id(name)
        return None if deep is None else (deep, env_key, context_length, costs)


def stored_walk(key: tuple) -> Any:
    return _walks.get(key)


def store_walk(key: tuple, cost: Any) -> None:
    with _lock:
        if len(_walks) >= MAX_WALKS:
            _walks.clear()
        _walks[key] = cost
