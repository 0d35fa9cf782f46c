"""The `openai` agent backend, driven through the real `openai` client against a
scripted Chat Completions server on loopback (tests/fake_openai_server.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_openai_server import FakeOpenAIServer, Step, error, reply
from genesys_agents.openai_backend import BackendRejected, BackendUnavailable, create
from genesys_dsl.agents.backend import AgentError, AgentReply, AgentRequest, SpendLimitReached
from genesys_dsl.agents.config import FlowSettings
from genesys_dsl.agents.flow import run_round
from genesys_dsl.agents.response_cache import ResponseCache, key_hash, request_key
from genesys_dsl.gp import canonical_hash
from genesys_dsl.syntax.files import read_design
from genesys_dsl.syntax.unparse import unparse
from paths import SPECS

VALID_UNIT = """```gab
unit GatedMLP(x: seq[D], ratio: float = 2.0 in 1.0..8.0) -> seq[D] {
    return Linear(silu(Linear(x, multiple_of(ratio * D, 8))) * Linear(x, multiple_of(ratio * D, 8)), D)
}
```"""

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


def ask(text: str = "write the unit", role: str = "implementer", **fields) -> AgentRequest:
    return AgentRequest(role=role, messages=({"role": "system", "content": "You write GAB."},
                                             {"role": "user", "content": text}), **fields)


def client_for(server: FakeOpenAIServer, **config):
    # fast retries and timeouts keep the suite quick; retry_seed keeps the jitter repeatable
    settings = {"base_url": server.base_url, "model": "fake-model", "timeout": 0.5,
                "max_retries": 2, "retry_base_delay": 0.01, "retry_max_delay": 0.05, **config}
    return create(settings)


# ------------------------------------------------------------------ replies


def test_a_reply_comes_back_as_is_with_its_usage():
    with FakeOpenAIServer([reply(VALID_UNIT, prompt_tokens=120, completion_tokens=45)]) as server:
        answer = client_for(server).complete(ask(seed=7, temperature=0.2, max_tokens=300))
    assert answer.text == VALID_UNIT
    assert (answer.prompt_tokens, answer.completion_tokens) == (120, 45)
    assert answer.finish_reason == "stop" and answer.model == "fake-model" and not answer.cached
    sent = server.requests[0]
    assert sent["model"] == "fake-model"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert (sent["seed"], sent["temperature"], sent["max_tokens"]) == (7, 0.2, 300)
    assert "response_format" not in sent and "grammar" not in sent


def test_invalid_dsl_is_returned_for_the_caller_to_diagnose():
    garbage = "Sure! Here is a unit:\n```gab\nunit Broken(x: seq[D] -> {\n```"
    with FakeOpenAIServer([reply(garbage, finish_reason="length")]) as server:
        answer = client_for(server).complete(ask())
    assert answer.text == garbage and answer.finish_reason == "length"


@pytest.mark.parametrize("content", ["", None])
def test_an_empty_reply_is_empty_text(content):
    with FakeOpenAIServer([reply(content)]) as server:
        answer = client_for(server).complete(ask())
    assert answer.text == ""


def test_a_reply_without_usage_counts_zero_tokens():
    with FakeOpenAIServer([reply("ok", usage=False)]) as server:
        client = client_for(server)
        answer = client.complete(ask())
    assert (answer.prompt_tokens, answer.completion_tokens, answer.cost) == (0, 0, 0.0)
    assert client.totals().requests == 1


@pytest.mark.parametrize("body", [b"not json {", b"", json.dumps({"choices": []}).encode(),
                                  json.dumps([1, 2, 3]).encode(), json.dumps({"choices": [{"message": None}]}).encode()],
                         ids=["garbage", "empty-body", "no-choices", "a-list", "null-message"])
def test_a_body_that_is_not_a_chat_completion_is_a_clear_error(body):
    with FakeOpenAIServer([Step(body=body)]) as server:
        with pytest.raises(BackendUnavailable, match="did not answer in the Chat Completions protocol") as err:
            client_for(server).complete(ask())
    assert server.base_url in str(err.value)
    assert len(server.requests) == 1  # a protocol error is not retried


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize("failure", [error(429, "slow down", {"Retry-After": "0"}), error(500, "boom"),
                                     error(503, "overloaded"), error(408, "request timeout")],
                         ids=["429", "500", "503", "408"])
def test_rate_limits_and_server_errors_are_retried_and_counted(failure):
    with FakeOpenAIServer([failure, reply("done")]) as server:
        client = client_for(server)
        answer = client.complete(ask())
    assert answer.text == "done"
    assert len(server.requests) == 2
    assert client.totals().retries == 1 and client.totals().requests == 1


def test_a_hang_times_out_and_is_retried():
    with FakeOpenAIServer([Step(delay=10, body={}), reply("after the hang")]) as server:
        client = client_for(server, timeout=0.3)
        answer = client.complete(ask())
    assert answer.text == "after the hang"
    assert client.totals().retries == 1


def test_after_the_last_retry_the_endpoint_is_reported_unavailable():
    with FakeOpenAIServer([error(500, "down")] * 3) as server:
        client = client_for(server, max_retries=2)
        with pytest.raises(BackendUnavailable, match=r"HTTP 500: down; gave up after 3 attempts"):
            client.complete(ask())
    assert len(server.requests) == 3 and client.totals().retries == 2


def test_a_dead_endpoint_is_reported_unavailable():
    with FakeOpenAIServer() as server:
        url = server.base_url
    client = create({"base_url": url, "model": "m", "max_retries": 1, "retry_base_delay": 0.0, "timeout": 0.5})
    with pytest.raises(BackendUnavailable, match="connection failed"):
        client.complete(ask())


def test_the_openai_clients_own_retries_are_off():
    # one 500 with max_retries=0: had the openai client retried on its own, a second request would arrive
    with FakeOpenAIServer([error(500, "once"), reply("never asked")]) as server:
        with pytest.raises(BackendUnavailable):
            client_for(server, max_retries=0).complete(ask())
    assert len(server.requests) == 1


@pytest.mark.parametrize("failure, expected", [
    (error(401, "bad key"), "refused the API key"),
    (error(404, "model 'nope' not found"), "model name 'fake-model'"),
    (error(400, "messages too long"), "rejected the request: HTTP 400: messages too long"),
])
def test_a_refused_request_is_a_clear_error_and_not_retried(failure, expected):
    with FakeOpenAIServer([failure]) as server:
        with pytest.raises(BackendRejected, match=expected):
            client_for(server).complete(ask())
    assert len(server.requests) == 1


# ------------------------------------------------------------------ accounting


def test_cost_comes_from_the_configured_prices():
    prices = {"fake-model": {"input": 2.0, "output": 10.0}}  # dollars per million tokens
    with FakeOpenAIServer([reply("a", 1000, 500), reply("b", 2000, 0)]) as server:
        client = client_for(server, prices=prices)
        first, second = client.complete(ask("one")), client.complete(ask("two"))
    assert first.cost == pytest.approx(0.002 + 0.005)
    assert second.cost == pytest.approx(0.004)
    totals = client.totals()
    assert (totals.prompt_tokens, totals.completion_tokens, totals.tokens) == (3000, 500, 3500)
    assert totals.cost == pytest.approx(0.011) and totals.notes == []


def test_a_model_without_a_price_costs_nothing_and_leaves_a_note():
    with FakeOpenAIServer([reply("a", 1000, 500), reply("b")]) as server:
        client = client_for(server, prices={"other-model": {"input": 1.0, "output": 1.0}})
        assert client.complete(ask("one")).cost == 0.0
        client.complete(ask("two"))
    assert client.totals().notes == ["no price configured for model 'fake-model': its cost is counted as 0"]


def test_a_model_per_role():
    with FakeOpenAIServer([reply("p"), reply("i")]) as server:
        client = client_for(server, model="cheap", roles={"implementer": {"model": "strong"}})
        client.complete(ask(role="proposer"))
        client.complete(ask(role="implementer"))
    assert [r["model"] for r in server.requests] == ["cheap", "strong"]


# ------------------------------------------------------------------ cache


def test_a_rerun_is_answered_from_the_cache(tmp_path):
    prices = {"fake-model": {"input": 1.0, "output": 1.0}}
    with FakeOpenAIServer([reply(VALID_UNIT, 400, 100)]) as server:
        first = client_for(server, cache_dir=str(tmp_path), prices=prices).complete(ask(seed=1))
        rerun = client_for(server, cache_dir=str(tmp_path), prices=prices)  # a fresh process's client
        again = rerun.complete(ask(seed=1))
    assert len(server.requests) == 1
    assert again.cached and again.text == first.text and again.cost == 0.0
    assert (again.prompt_tokens, again.completion_tokens, again.seconds) == (400, 100, first.seconds)
    totals = rerun.totals()
    assert totals.cache_hits == 1 and totals.requests == 0 and totals.cost == 0.0
    assert totals.saved == pytest.approx(first.cost) and first.cost > 0
    assert not list(tmp_path.rglob(".tmp-*"))  # written atomically: no temporary file left


@pytest.mark.parametrize("change", [{"seed": 2}, {"temperature": 0.1}, {"max_tokens": 99},
                                    {"response_schema": SCHEMA}, {"text": "something else"}])
def test_any_change_to_the_request_misses_the_cache(tmp_path, change):
    text = change.pop("text", "write the unit")
    with FakeOpenAIServer([reply("first"), reply("second")]) as server:
        client = client_for(server, cache_dir=str(tmp_path), structured_output=False)
        client.complete(ask(seed=1))
        assert client.complete(ask(text, **{"seed": 1, **change})).text == "second"
    assert len(server.requests) == 2


def test_another_model_misses_the_cache(tmp_path):
    with FakeOpenAIServer([reply("first"), reply("second")]) as server:
        client_for(server, cache_dir=str(tmp_path)).complete(ask())
        assert client_for(server, cache_dir=str(tmp_path), model="other").complete(ask()).text == "second"


def test_an_unreadable_cache_entry_is_a_miss_and_is_rewritten(tmp_path):
    with FakeOpenAIServer([reply("first"), reply("second")]) as server:
        client_for(server, cache_dir=str(tmp_path)).complete(ask())
        [entry] = list(tmp_path.rglob("*.json"))
        entry.write_text("{truncated", encoding="utf-8")
        assert client_for(server, cache_dir=str(tmp_path)).complete(ask()).text == "second"
    assert json.loads(entry.read_text(encoding="utf-8"))["reply"]["text"] == "second"


def test_an_unusable_cache_folder_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AgentError, match="cannot create folder"):
        create({"base_url": "http://127.0.0.1:9/v1", "model": "m", "cache_dir": str(blocker / "cache")})


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=40), seed=st.none() | st.integers(0, 2**31),
       temperature=st.floats(0, 2), other=st.text(max_size=40))
def test_the_cache_key_is_stable_and_separates_requests(text, seed, temperature, other):
    request = ask(text, seed=seed, temperature=temperature)
    same = ask(text, seed=seed, temperature=temperature)
    assert key_hash(request_key(request, "m", None)) == key_hash(request_key(same, "m", None))
    if other != text:
        assert key_hash(request_key(ask(other, seed=seed, temperature=temperature), "m", None)) \
            != key_hash(request_key(request, "m", None))
    assert key_hash(request_key(request, "m", "root ::= \"x\"")) != key_hash(request_key(request, "m", None))


def test_cache_round_trip_keeps_every_field(tmp_path):
    cache = ResponseCache(tmp_path)
    key = request_key(ask(), "m", None)
    stored = AgentReply(text="t", model="m", prompt_tokens=3, completion_tokens=4, cost=0.5,
                        finish_reason="length", seconds=1.5)
    cache.put(key, stored)
    assert cache.get(key) == stored
    assert cache.get(request_key(ask("other"), "m", None)) is None


# ------------------------------------------------------------------ spend limit


def test_the_spend_limit_in_dollars_stops_the_next_request():
    prices = {"fake-model": {"input": 1.0, "output": 1.0}}
    with FakeOpenAIServer([reply("a", 600_000, 500_000), reply("never sent")]) as server:
        client = client_for(server, prices=prices, spend_limit=1.0)
        assert client.complete(ask("one")).cost == pytest.approx(1.1)  # a request already started finishes
        with pytest.raises(SpendLimitReached, match=r"spent \$1.1000 of the \$1.0000 limit"):
            client.complete(ask("two"))
    assert len(server.requests) == 1


def test_the_spend_limit_in_tokens_stops_the_next_request():
    with FakeOpenAIServer([reply("a", 50, 10), reply("b", 50, 10), reply("never sent")]) as server:
        client = client_for(server, spend_limit={"tokens": 100})
        client.complete(ask("one"))
        client.complete(ask("two"))
        with pytest.raises(SpendLimitReached, match="used 120 of the 100-token limit"):
            client.complete(ask("three"))
    assert len(server.requests) == 2


def test_cached_replies_are_served_after_the_limit(tmp_path):
    with FakeOpenAIServer([reply("a", 50, 60)]) as server:
        client = client_for(server, spend_limit={"tokens": 100}, cache_dir=str(tmp_path))
        client.complete(ask())
        assert client.complete(ask()).cached  # free, so the limit does not apply
        with pytest.raises(SpendLimitReached):
            client.complete(ask("new"))


# ------------------------------------------------------------------ structured output and grammars


def test_a_schema_is_sent_as_json_schema_structured_output():
    with FakeOpenAIServer([reply('{"title": "x"}')]) as server:
        client_for(server).complete(ask(role="proposer", response_schema=SCHEMA))
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == SCHEMA and sent["json_schema"]["name"] == "proposer_reply"


def test_an_endpoint_without_structured_output_falls_back_to_text_and_remembers():
    refusal = error(400, "Unsupported value: 'response_format' of type json_schema")
    with FakeOpenAIServer([refusal, reply("plain one"), reply("plain two")]) as server:
        client = client_for(server)
        assert client.complete(ask("one", response_schema=SCHEMA)).text == "plain one"
        assert client.complete(ask("two", response_schema=SCHEMA)).text == "plain two"
    assert ["response_format" in r for r in server.requests] == [True, False, False]
    assert client.totals().retries == 0  # a fallback is not a retry


def test_structured_output_can_be_turned_off():
    with FakeOpenAIServer([reply("{}")]) as server:
        client_for(server, structured_output=False).complete(ask(response_schema=SCHEMA))
    assert "response_format" not in server.requests[0]


def test_a_grammar_is_sent_the_llama_cpp_way_when_enabled():
    grammar = 'root ::= "unit " [A-Z] [a-zA-Z]*'
    with FakeOpenAIServer([reply("unit X"), reply("unit Y")]) as server:
        client_for(server, grammar=True).complete(ask(grammar=grammar, response_schema=SCHEMA))
        client_for(server).complete(ask(grammar=grammar))  # off by default
    with_grammar, without = server.requests
    assert with_grammar["grammar"] == grammar and "response_format" not in with_grammar
    assert "grammar" not in without


# ------------------------------------------------------------------ configuration


def test_settings_come_from_the_environment(monkeypatch):
    with FakeOpenAIServer([reply("hi")]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("GENESYS_AGENT_MODEL", "env-model")
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        create({"timeout": 1}).complete(ask())
    assert server.requests[0]["model"] == "env-model"


@pytest.mark.parametrize("config, message", [
    ({"base_url": "http://127.0.0.1:9/v1"}, "no model named for the implementer.*GENESYS_AGENT_MODEL"),
    ({"model": "gpt-4o-mini"}, "OpenAI's API needs a key: set OPENAI_API_KEY"),
    ({"model": "m", "base_url": "localhost:8080"}, "base_url 'localhost:8080' is not an http"),
    ({"model": "m", "base_url": "http://x/v1", "modle": "y"}, "modle: unknown setting; did you mean 'model'"),
    ({"model": "m", "base_url": "http://x/v1", "roles": {"implementr": {}}}, "unknown role 'implementr'"),
    ({"model": "m", "base_url": "http://x/v1", "spend_limit": -1}, "spend_limit.dollars: Input should be greater"),
    ({"model": "m", "base_url": "http://x/v1", "spend_limit": {"dolars": 1}}, "did you mean 'dollars'"),
    ({"model": "m", "base_url": "http://x/v1", "prices": {"m": {"input": 1}}}, r"prices.m.output: Field required"),
])
def test_configuration_mistakes_are_clear_errors(monkeypatch, config, message):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "GENESYS_AGENT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AgentError, match=message):
        create(config)


def test_a_role_without_a_model_fails_when_it_is_used(monkeypatch):
    monkeypatch.delenv("GENESYS_AGENT_MODEL", raising=False)
    with FakeOpenAIServer([reply("i")]) as server:
        client = create({"base_url": server.base_url, "roles": {"implementer": {"model": "strong"}}})
        assert client.complete(ask(role="implementer")).text == "i"
        with pytest.raises(AgentError, match="no model named for the reviewer"):
            client.complete(ask(role="reviewer"))


def test_the_backend_is_registered_by_its_plugin():
    from genesys_dsl.plugins import agent_registry

    backend = agent_registry().lookup("openai")
    assert backend.plugin == "agents" and backend.create is create


# ------------------------------------------------------------------ a design round through the endpoint

LLAMA = read_design(SPECS / "llama.gab")
PROPOSAL = {"title": "GELU gate", "motivation": "gelu is smoother than silu",
            "units": [{"name": "SwiGLU", "action": "change", "change": "silu -> gelu"}]}
GOOD_REVIEW = {"soundness": 4, "novelty": 4, "efficiency": 5, "score": 4, "comments": "fine"}
SWIGLU_GELU = """unit SwiGLU(x: seq[D], multiple: int = 32 in {8, 16, 32, 64, 128, 256}) -> seq[D] {
    hidden = multiple_of(8 * D / 3, multiple)
    return Linear(gelu(Linear(x, hidden)) * Linear(x, hidden), D)
}"""
SWIGLU_BAD_SHAPE = SWIGLU_GELU.replace("hidden), D)", "hidden), 2 * D)")


def _round(client):
    return run_round([LLAMA], client, FlowSettings(verify="final", reference=False),
                     seed=0, backend="openai")


def _round_script():
    return [reply(json.dumps(PROPOSAL), 900, 60), reply(json.dumps(GOOD_REVIEW), 700, 40),
            reply(f"Here you go:\n```gab\n{SWIGLU_BAD_SHAPE}\n```", 1200, 90), reply(SWIGLU_GELU, 1500, 80)]


def test_a_design_round_repairs_invalid_dsl_and_a_rerun_spends_nothing(tmp_path):
    prices = {"fake-model": {"input": 1.0, "output": 4.0}}
    with FakeOpenAIServer(_round_script()) as server:
        result = _round(client_for(server, prices=prices, grammar=True, cache_dir=str(tmp_path)))
    assert result.ok, result.reason
    assert result.units == {"SwiGLU": "written"} and "gelu(Linear(x, hidden))" in unparse(result.child)
    proposer, reviewer, first_try, repaired = server.requests
    assert proposer["response_format"]["json_schema"]["name"] == "proposer_reply"
    assert reviewer["response_format"]["json_schema"]["name"] == "reviewer_reply"
    assert first_try["grammar"].startswith("# GBNF (root: unit)") and "response_format" not in first_try
    assert '"shape-mismatch"' in repaired["messages"][-1]["content"]  # the checker's diagnostics went back
    outcomes = [e["outcome"] for e in result.transcript.events if e["role"] == "implementer"]
    assert outcomes == ["repair", "passed"]
    usage = result.transcript.to_dict()["usage"]
    assert usage["design"]["prompt_tokens"] == 4300 and usage["design"]["completion_tokens"] == 270
    assert usage["design"]["cost"] == pytest.approx((4300 * 1.0 + 270 * 4.0) / 1e6)

    with FakeOpenAIServer() as empty:  # the same round again: every request is in the cache
        rerun = _round(client_for(empty, prices=prices, grammar=True, cache_dir=str(tmp_path)))
    assert empty.requests == []
    assert rerun.ok and canonical_hash(rerun.child) == canonical_hash(result.child)
    again = rerun.transcript.to_dict()["usage"]["design"]
    assert again["cached"] == 4 and again["cost"] == 0.0


def test_an_endpoint_that_fails_mid_round_stops_it_with_a_clear_reason():
    script = _round_script()[:2] + [error(503, "overloaded")] * 3
    with FakeOpenAIServer(script) as server:
        result = _round(client_for(server, max_retries=2))
    assert result.status == "backend-error"
    assert "BackendUnavailable" in result.reason and "HTTP 503: overloaded; gave up after 3 attempts" in result.reason
    assert [e["role"] for e in result.transcript.events] == ["proposer", "reviewer", "implementer"]


def test_the_spend_limit_stops_a_round_cleanly():
    with FakeOpenAIServer(_round_script()) as server:
        result = _round(client_for(server, spend_limit={"tokens": 1500}))
    assert result.status == "spend-limit" and "1500-token limit" in result.reason
    assert len(server.requests) == 2  # the implementer's request never started

