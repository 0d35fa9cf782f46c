"""The built-in archive store: SQLite, one file per run."""

from genesys_dsl.evolve.sqlite_store import STORE

STORES = [STORE]
