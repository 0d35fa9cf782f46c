"""The built-in agent backends: `gp` (offline, proposals from the GP operators) and
`openai` (any OpenAI-compatible Chat Completions endpoint)."""

from genesys_dsl import hookimpl


@hookimpl
def register_agents(register):
    from . import gp_backend, openai_backend

    for module in (gp_backend, openai_backend):
        register(module.BACKEND)
