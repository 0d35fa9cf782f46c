"""The built-in executors: in-process (debugging), the subprocess pool (isolation and
limits) and Ray (a local instance or a cluster; Ray itself is the optional extra `ray`)."""

from genesys_dsl.evolve import inprocess, ray_executor, subprocess_pool

EXECUTORS = [inprocess.EXECUTOR, subprocess_pool.EXECUTOR, ray_executor.EXECUTOR]
