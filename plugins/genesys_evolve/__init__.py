"""The built-in archive store (SQLite) and executors (in-process, subprocess pool, Ray)."""

from genesys_dsl import hookimpl


@hookimpl
def register_stores(register):
    from . import stores

    for kind in stores.STORES:
        register(kind)


@hookimpl
def register_executors(register):
    from . import executors

    for kind in executors.EXECUTORS:
        register(kind)
