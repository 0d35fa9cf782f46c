"""The plugin manager: loads built-in and third-party plugins, builds registries.

Built-in plugins live in the repository's plugins/ folder and are declared in
pyproject.toml under the entry-point group `genesys_dsl`, exactly like a
third-party plugin. When running from a source tree without installed metadata,
the built-ins are imported directly so the package still works.

`GENESYS_PLUGINS=name,name` (entry-point names) loads only those plugins.

A plugin that raises while registering is isolated: its failure is recorded as a
`PluginFailure` (on the registry, and in `plugin_failures()`) and every other
plugin's contributions stay. Conflicts between plugins (two with the same name,
two registering the same primitive or operator) and unknown hook names are
configuration errors and raise `PluginError`.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import pluggy

from . import hookspecs
from .ops.registry import Primitive, Registry, RegistryError

if TYPE_CHECKING:
    from .gp.operator import Operator

# entry-point name -> module, for the plugins that ship with genesys-dsl
BUILTIN_PLUGINS = {"primitives": "genesys_primitives", "operators": "genesys_operators",
                   "benchmarks": "genesys_benchmarks", "agents": "genesys_agents", "evolve": "genesys_evolve"}

SELECTION_VARIABLE = "GENESYS_PLUGINS"
BUILTIN_ORIGIN = "built-in"
DIRECT_ORIGIN = "registered directly"


class PluginError(RuntimeError):
    """A plugin that cannot be loaded or that registered something invalid."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that raised: reported with its name, never stopping the caller."""

    plugin: str
    hook: str  # a hook name, or "load" when importing the plugin failed
    message: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' failed in {self.hook}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "hook": self.hook, "message": self.message}


class GenesysPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers where each plugin came from and which
    plugins failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}  # plugin name -> "built-in" / "dist 1.0" / ...
        self.load_failures: list[PluginFailure] = []

    def add(self, plugin: object, name: str, origin: str) -> None:
        """Register one plugin, turning pluggy's validation errors into PluginError."""
        if self.has_plugin(name):
            raise PluginError(f"two plugins are named '{name}': {self.origins[name]} and {origin}")
        try:
            self.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as err:
            raise PluginError(f"plugin '{name}' ({origin}): {err}") from None
        self.origins[name] = origin


# ------------------------------------------------------------------ loading


def make_plugin_manager(plugins: Mapping[str, object] | Iterable[object] | None = None) -> GenesysPluginManager:
    """A fresh plugin manager. With `plugins` (name -> plugin, or plugin objects named
    by their `__name__`), exactly those; without, the entry points of group
    `genesys_dsl` and the built-ins, filtered by GENESYS_PLUGINS."""
    pm = GenesysPluginManager()
    if plugins is None:
        _load_installed(pm, _selected_names())
    else:
        for name, plugin in _named(plugins):
            pm.add(plugin, name, DIRECT_ORIGIN)
    _check_hook_names(pm)
    return pm


@lru_cache(maxsize=None)
def plugin_manager() -> GenesysPluginManager:
    """The process-wide plugin manager (installed plugins, per GENESYS_PLUGINS)."""
    return make_plugin_manager()


def _named(plugins: Mapping[str, object] | Iterable[object]) -> Iterator[tuple[str, object]]:
    if isinstance(plugins, Mapping):
        yield from plugins.items()
    else:
        for plugin in plugins:
            yield getattr(plugin, "__name__", type(plugin).__name__), plugin


def _installed_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=hookspecs.PROJECT)}


def available_plugins() -> list[str]:
    """Names GENESYS_PLUGINS may list: every entry point of the group and every built-in."""
    return sorted(set(_installed_entry_points()) | set(BUILTIN_PLUGINS))


def _selected_names() -> set[str] | None:
    """The names in GENESYS_PLUGINS, or None (load everything) when it is unset or blank."""
    names = {n.strip() for n in os.environ.get(SELECTION_VARIABLE, "").split(",") if n.strip()}
    if not names:
        return None
    unknown = sorted(names - set(available_plugins()))
    if unknown:
        raise PluginError(f"{SELECTION_VARIABLE} names unknown plugin(s) {', '.join(unknown)}; "
                          f"available: {', '.join(available_plugins())}")
    return names


def _load_installed(pm: GenesysPluginManager, selected: set[str] | None) -> None:
    def wanted(name: str) -> bool:
        return selected is None or name in selected

    for name, ep in _installed_entry_points().items():
        if wanted(name):
            _load(pm, name, ep.load, _origin(name, ep))
    # a source tree without installed metadata (or stale metadata) still gets its built-ins
    for name, module in BUILTIN_PLUGINS.items():
        if wanted(name) and not pm.has_plugin(name):
            _load(pm, name, lambda m=module: importlib.import_module(m), BUILTIN_ORIGIN)


def _load(pm: GenesysPluginManager, name: str, load: Callable[[], object], origin: str) -> None:
    """Import one plugin; one that fails to import is recorded, not fatal."""
    try:
        plugin = load()
    except Exception as err:
        pm.load_failures.append(PluginFailure(name, "load", _describe(err)))
        return
    pm.add(plugin, name, origin)


def _origin(name: str, ep: EntryPoint) -> str:
    dist = ep.dist
    described = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    if BUILTIN_PLUGINS.get(name) == ep.value:
        return f"{BUILTIN_ORIGIN} ({described})"
    return described


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """A hookimpl whose name is no hookspec (a typo) would silently never run: refuse it."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        raise PluginError(_unknown_hook_message(pm, err.plugin)) from None


def _unknown_hook_message(pm: pluggy.PluginManager, plugin: object) -> str:
    known = sorted(hook for hook, caller in vars(pm.hook).items() if caller.has_spec())
    name = _plugin_name(pm, plugin)
    for hook, caller in vars(pm.hook).items():
        if caller.has_spec() or not any(impl.plugin is plugin for impl in caller.get_hookimpls()):
            continue
        close = difflib.get_close_matches(hook, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known hooks: {', '.join(known)}"
        return f"plugin '{name}' implements unknown hook '{hook}'{hint}"
    return f"plugin '{name}' implements an unknown hook; known hooks: {', '.join(known)}"


def _plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


# ------------------------------------------------------------------ calling hooks


def _collect(pm: pluggy.PluginManager, hook: str, accept: Callable[[Any, str], Any]
             ) -> tuple[list[tuple[str, list[Any]]], list[PluginFailure]]:
    """Call `hook` on each plugin separately, with a `register` callback that passes
    each contribution through `accept(item, plugin_name)`. A plugin that raises
    contributes nothing and is recorded as a failure; the others still count."""
    contributions, failures = [], []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        name = _plugin_name(pm, impl.plugin)
        staged: list[Any] = []

        def register(item: Any, _name: str = name, _staged: list = staged) -> None:
            _staged.append(accept(item, _name))

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as err:
            failures.append(PluginFailure(name, hook, _describe(err)))
            continue
        contributions.append((name, staged))
    return contributions, failures


# ------------------------------------------------------------------ primitives


@dataclass
class PrimitiveRegistry(Registry):
    """The primitives of a plugin manager, with the plugins that failed to register."""

    failures: list[PluginFailure] = field(default_factory=list)


def _accept_primitive(item: Any, plugin: str) -> Primitive:
    if not isinstance(item, Primitive):
        raise PluginError(f"register() takes a genesys_dsl.ops.Primitive, got {type(item).__name__}")
    return replace(item, plugin=plugin)


def build_primitive_registry(pm: pluggy.PluginManager) -> PrimitiveRegistry:
    """All primitives registered by the plugins of `pm`."""
    contributions, failures = _collect(pm, "register_primitives", _accept_primitive)
    registry = PrimitiveRegistry(failures=failures)
    for plugin, primitives in contributions:
        for prim in primitives:
            try:
                registry.register(prim)
            except RegistryError as err:  # a clash between two plugins: names both
                raise PluginError(f"plugin '{plugin}': {err}") from None
    return registry


@lru_cache(maxsize=None)
def primitive_registry() -> PrimitiveRegistry:
    """All primitives registered by the loaded plugins."""
    return build_primitive_registry(plugin_manager())


# ------------------------------------------------------------------ named contributions


@dataclass
class NamedRegistry(Mapping):
    """Name -> contribution (an operator, benchmark suite, agent backend, store or
    executor), with the plugins that failed to register."""

    kind: str  # what the contributions are, for messages: "operator", "benchmark suite", ...
    entries: dict[str, Any] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, item: Any) -> None:
        if item.name in self.entries:
            raise PluginError(f"plugin '{item.plugin}': {self.kind} '{item.name}' is already registered by "
                              f"{self.entries[item.name].plugin}")
        self.entries[item.name] = item

    def lookup(self, name: str) -> Any:
        """The contribution called `name`, or a PluginError that lists what exists."""
        if name in self.entries:
            return self.entries[name]
        close = difflib.get_close_matches(name, list(self.entries), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        available = ", ".join(sorted(self.entries)) or "none (is its plugin loaded? see `genesys plugins`)"
        raise PluginError(f"unknown {self.kind} '{name}'{hint} Available: {available}")


class OperatorRegistry(NamedRegistry):
    """Name -> genetic-programming Operator."""

    def of_arity(self, arity: int) -> list[Operator]:
        """Mutations (1) or crossovers (2), by name."""
        return sorted((op for op in self.entries.values() if op.arity == arity), key=lambda op: op.name)


def _accepting(kind: str, cls: type) -> Callable[[Any, str], Any]:
    """A register() filter: only instances of `cls`, stamped with the registering plugin."""

    def accept(item: Any, plugin: str) -> Any:
        if not isinstance(item, cls):
            raise PluginError(f"register() takes a {cls.__module__.split('.')[0]}.{cls.__qualname__} "
                              f"({kind}), got {type(item).__name__}")
        return replace(item, plugin=plugin)

    return accept


def build_named_registry(pm: pluggy.PluginManager, hook: str, kind: str, cls: type,
                         registry_class: type[NamedRegistry] = NamedRegistry) -> NamedRegistry:
    """Every `cls` the plugins of `pm` registered through `hook`."""
    contributions, failures = _collect(pm, hook, _accepting(kind, cls))
    registry = registry_class(kind=kind, failures=failures)
    for _, items in contributions:
        for item in items:
            registry.add(item)
    return registry


def _contribution_kinds() -> dict[str, tuple[str, type, type[NamedRegistry]]]:
    """hook -> (kind, class, registry class); imported lazily, as these modules import this one."""
    from .agents.backend import AgentBackend
    from .evaluate.suite import BenchmarkSuite
    from .evolve.executor import ExecutorKind
    from .evolve.store import StoreKind
    from .gp.operator import Operator

    return {
        "register_operators": ("operator", Operator, OperatorRegistry),
        "register_benchmarks": ("benchmark suite", BenchmarkSuite, NamedRegistry),
        "register_agents": ("agent backend", AgentBackend, NamedRegistry),
        "register_stores": ("store", StoreKind, NamedRegistry),
        "register_executors": ("executor", ExecutorKind, NamedRegistry),
    }


def build_registry(pm: pluggy.PluginManager, hook: str) -> NamedRegistry:
    kind, cls, registry_class = _contribution_kinds()[hook]
    return build_named_registry(pm, hook, kind, cls, registry_class)


@lru_cache(maxsize=None)
def registry_for(hook: str) -> NamedRegistry:
    """What the loaded plugins registered through `hook` (cached per process)."""
    return build_registry(plugin_manager(), hook)


def build_operator_registry(pm: pluggy.PluginManager) -> OperatorRegistry:
    """All genetic-programming operators registered by the plugins of `pm`."""
    return build_registry(pm, "register_operators")


def operator_registry() -> OperatorRegistry:
    """All operators registered by the loaded plugins."""
    return registry_for("register_operators")


def benchmark_registry() -> NamedRegistry:
    """All benchmark suites registered by the loaded plugins."""
    return registry_for("register_benchmarks")


def agent_registry() -> NamedRegistry:
    """All agent backends registered by the loaded plugins."""
    return registry_for("register_agents")


def store_registry() -> NamedRegistry:
    """All archive stores registered by the loaded plugins."""
    return registry_for("register_stores")


def executor_registry() -> NamedRegistry:
    """All executors registered by the loaded plugins."""
    return registry_for("register_executors")


# ------------------------------------------------------------------ reporting


def _registries(pm: GenesysPluginManager | None) -> tuple[GenesysPluginManager, Registry, dict[str, NamedRegistry]]:
    if pm is None:
        return plugin_manager(), primitive_registry(), {h: registry_for(h) for h in _contribution_kinds()}
    return pm, build_primitive_registry(pm), {h: build_registry(pm, h) for h in _contribution_kinds()}


def plugin_failures(pm: GenesysPluginManager | None = None) -> list[PluginFailure]:
    """Every plugin that failed to load or to register, for `genesys plugins` and warnings."""
    pm, primitives, named = _registries(pm)
    return [*pm.load_failures, *primitives.failures, *(f for r in named.values() for f in r.failures)]


@dataclass(frozen=True)
class PluginSummary:
    """One loaded plugin: where it came from and what it registered, by kind."""

    name: str
    origin: str
    contributions: dict[str, list[str]]  # kind ("primitive", "operator", ...) -> names

    @property
    def primitives(self) -> list[str]:
        return self.contributions.get("primitive", [])

    @property
    def operators(self) -> list[str]:
        return self.contributions.get("operator", [])

    def to_dict(self) -> dict[str, Any]:
        # one key per kind, plural: "primitives", "operators", "benchmark_suites", ...
        return {"name": self.name, "origin": self.origin,
                **{kind.replace(" ", "_") + "s": names for kind, names in self.contributions.items()}}


def plugin_summaries(pm: GenesysPluginManager | None = None) -> list[PluginSummary]:
    """Every loaded plugin, by name, with its contributions."""
    pm, primitives, named = _registries(pm)
    summaries = []
    for name, _ in sorted(pm.list_name_plugin()):
        contributions = {"primitive": sorted(p.name for p in primitives if p.plugin == name)}
        for registry in named.values():
            contributions[registry.kind] = sorted(n for n, item in registry.items() if item.plugin == name)
        summaries.append(PluginSummary(name=name, origin=pm.origins.get(name, DIRECT_ORIGIN),
                                       contributions=contributions))
    return summaries
