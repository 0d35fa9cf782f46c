"""The built-in benchmark suites: synthetic recall tasks (MAD, MQAR), perplexity on
the held-out corpus, and lm-evaluation-harness tasks. Registered through the same
hook a third-party plugin uses."""

from genesys_dsl import hookimpl


@hookimpl
def register_benchmarks(register):
    from . import lm_eval_suite, perplexity, synthetic

    for module in (synthetic, perplexity, lm_eval_suite):
        for suite in module.suites():
            register(suite)
