"""Every pluggy hook of genesys-dsl, typed and documented.

Plugins implement hooks with the `genesys_dsl.hookimpl` marker and are found
through the entry-point group `genesys_dsl` (see docs/plugins.md). Each hook
receives a `register` callback, in the style of simonw/llm: a plugin calls it
once per thing it contributes. Every hook here needs a heading in
docs/plugins.md and a test (tests/test_plugins.py enforces both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # only for annotations: importing them here would be circular
    from .agents.backend import AgentBackend
    from .evaluate.suite import BenchmarkSuite
    from .evolve.executor import ExecutorKind
    from .evolve.store import StoreKind
    from .gp.operator import Operator
    from .ops.registry import Primitive

PROJECT = "genesys_dsl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_primitives(register: Callable[[Primitive], None]) -> None:
    """Contribute primitives that specs may call.

    Call `register(primitive)` with each `genesys_dsl.ops.Primitive`, usually built
    with `genesys_dsl.ops.primitive("Name(x: seq[D], ...) -> seq[D]", family=...,
    temporal=..., summary=..., params=..., flops=...)`; set its `torch` field to the
    module whose `IMPLEMENTATIONS` holds its torch code so designs using it compile.
    Names must be unique across all loaded plugins. If the hook raises, nothing it
    registered is kept and the failure is reported with the plugin's name.
    """


@hookspec
def register_operators(register: Callable[[Operator], None]) -> None:
    """Contribute genetic-programming operators.

    Call `register(operator)` with each `genesys_dsl.gp.Operator(name, arity, weight,
    function, summary)`. `function(parents, rng) -> Design` takes `arity` parent
    designs (1 = mutation, 2 = crossover) and a `random.Random`, returns a new design,
    and never changes its parents; it raises `genesys_dsl.gp.NotApplicable` when the
    parents offer nothing to edit. Names must be unique across all loaded plugins.
    Operators run through `genesys_dsl.gp.safety.apply_operator`, which reports one
    that raises or returns an invalid tree with the plugin's name.
    """


@hookspec
def register_benchmarks(register: Callable[[BenchmarkSuite], None]) -> None:
    """Contribute benchmark suites that score designs.

    Call `register(suite)` with each `genesys_dsl.evaluate.BenchmarkSuite(name, summary,
    tasks, run)`: `tasks` describes every task (metric, random-guess score, best score)
    and `run(context, task_names) -> list[TaskScore]` scores one design at one scale and
    seed, through the `genesys_dsl.evaluate.EvalContext` it is given (fresh seeded
    models, the design trained on the corpus, the device). Suite names must be unique
    across all loaded plugins.
    """


@hookspec
def register_agents(register: Callable[[AgentBackend], None]) -> None:
    """Contribute agent backends: what turns a role's request into a reply.

    Call `register(backend)` with each `genesys_dsl.agents.AgentBackend(name, summary,
    create)`; `create(config)` returns a client whose `complete(request) -> AgentReply`
    answers one role request (proposer, reviewer or implementer). Backend names must
    be unique across all loaded plugins.
    """


@hookspec
def register_stores(register: Callable[[StoreKind], None]) -> None:
    """Contribute design-archive stores (where an evolution run keeps its state).

    Call `register(kind)` with each `genesys_dsl.evolve.StoreKind(name, summary, open)`;
    `open(location)` returns a `genesys_dsl.evolve.Store`. Names must be unique across
    all loaded plugins.
    """


@hookspec
def register_executors(register: Callable[[ExecutorKind], None]) -> None:
    """Contribute executors (where candidate evaluations run).

    Call `register(kind)` with each `genesys_dsl.evolve.ExecutorKind(name, summary,
    create)`; `create(settings)` returns a `genesys_dsl.evolve.Executor`. Names must be
    unique across all loaded plugins.
    """
