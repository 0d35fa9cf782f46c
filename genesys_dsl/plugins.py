"""The plugin manager: loads built-in and third-party plugins, builds registries.

Built-in plugins live in the repository's plugins/ folder and are declared in
pyproject.toml under the entry-point group `genesys_dsl`, exactly like a
third-party plugin. When running from a source tree without installed metadata,
the built-ins are imported directly so the package still works.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

import pluggy

from . import hookspecs
from .ops.registry import Primitive, Registry, RegistryError

# entry-point name -> module, for the plugins that ship with genesys-dsl
BUILTIN_PLUGINS = {"primitives": "genesys_primitives"}


class PluginError(RuntimeError):
    """A plugin that cannot be loaded or that registered something invalid."""


@lru_cache(maxsize=None)
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for name, module in BUILTIN_PLUGINS.items():
        if pm.get_plugin(name) is None:
            pm.register(importlib.import_module(module), name=name)
    return pm


def _plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


@lru_cache(maxsize=None)
def primitive_registry() -> Registry:
    """All primitives registered by the loaded plugins."""
    pm = plugin_manager()
    registry = Registry()
    for impl in pm.hook.register_primitives.get_hookimpls():
        name = _plugin_name(pm, impl.plugin)

        def register(prim: Primitive, _name: str = name) -> None:
            try:
                registry.register(prim, plugin=_name)
            except RegistryError as err:
                raise PluginError(f"plugin '{_name}': {err}") from None

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as err:  # a broken plugin is named, not a bare traceback
            raise PluginError(f"plugin '{name}' failed in register_primitives: {err}") from err
    return registry
