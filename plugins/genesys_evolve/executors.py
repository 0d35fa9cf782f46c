"""The built-in executors: in-process (debugging) and the subprocess pool (isolation and limits)."""

from genesys_dsl.evolve import inprocess, subprocess_pool

EXECUTORS = [inprocess.EXECUTOR, subprocess_pool.EXECUTOR]
