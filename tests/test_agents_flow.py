"""The agent flow: proposer -> reviewer -> implementer, unit by unit, with the offline
`gp` backend and with a scripted client standing in for an LLM that answers well,
badly, emptily, at length, or runs out of money."""

import json
import types

import pytest

from genesys_dsl import hookimpl, ir
from genesys_dsl.agents.backend import AgentBackend, AgentReply, AgentRequest, SpendLimitReached
from genesys_dsl.agents.config import FlowSettings, load_config
from genesys_dsl.agents.backend import AgentError
from genesys_dsl.agents.flow import run_round
from genesys_dsl.agents.prompts import parse_template, template, versions
from genesys_dsl.check import check
from genesys_dsl.gp import canonical_hash
from genesys_dsl.plugins import build_registry, make_plugin_manager
from genesys_dsl.syntax.files import read_design
from genesys_dsl.syntax.unparse import unparse
from genesys_agents.gp_backend import BACKEND as GP
from paths import ROOT, SPECS

LLAMA = read_design(SPECS / "llama.gab")
MAMBA2 = read_design(SPECS / "mamba2.gab")
FAST = FlowSettings(verify="off", reference=False)

PROPOSAL = {"title": "GELU gate", "motivation": "gelu is smoother than silu",
            "units": [{"name": "SwiGLU", "action": "change", "change": "silu -> gelu"}]}
GOOD_REVIEW = {"soundness": 4, "novelty": 4, "efficiency": 5, "score": 4, "comments": "fine"}
LOW_REVIEW = {"soundness": 3, "novelty": 2, "efficiency": 4, "score": 2, "comments": "too small a change"}
SWIGLU_GELU = """unit SwiGLU(x: seq[D], multiple: int = 32 in {8, 16, 32, 64, 128, 256}) -> seq[D] {
    hidden = multiple_of(8 * D / 3, multiple)
    return Linear(gelu(Linear(x, hidden)) * Linear(x, hidden), D)
}"""
SWIGLU_BAD_SHAPE = """unit SwiGLU(x: seq[D], multiple: int = 32 in {8, 16, 32, 64, 128, 256}) -> seq[D] {
    hidden = multiple_of(8 * D / 3, multiple)
    return Linear(gelu(Linear(x, hidden)) * Linear(x, hidden), 2 * D)
}"""


def reply(text, **usage):
    return AgentReply(text=text if isinstance(text, str) else json.dumps(text), model="scripted",
                      finish_reason=usage.pop("finish_reason", "stop"), **usage)


class Scripted:
    """An AgentClient that answers each role from its own queue (an exception is raised)."""

    def __init__(self, **queues):
        self.queues = {role: list(items) for role, items in queues.items()}
        self.requests: list[AgentRequest] = []

    def complete(self, request: AgentRequest) -> AgentReply:
        self.requests.append(request)
        item = self.queues[request.role].pop(0)
        if isinstance(item, Exception):
            raise item
        return item if isinstance(item, AgentReply) else reply(item)

    def sent(self, role):
        return [r for r in self.requests if r.role == role]


def events(result, role=None):
    return [e for e in result.transcript.events if role is None or e["role"] == role]


def codes(event):
    return [d["code"] for d in event["diagnostics"]]


# ------------------------------------------------------------------ gp backend


def test_gp_backend_makes_a_valid_new_child_offline():
    result = run_round([LLAMA], GP.create({}), FlowSettings(), seed=3, backend="gp")
    assert result.ok, result.reason
    assert check(result.child, ["cpu-xs"]).ok
    assert canonical_hash(result.child) != canonical_hash(LLAMA)
    assert [e["role"] for e in events(result)][:2] == ["proposer", "reviewer"]
    assert result.proposal.origin.startswith("gp:")
    assert set(result.units) == {u.name for u in result.proposal.units}
    data = result.transcript.to_dict()
    assert data["prompts"] == versions() and data["result"]["status"] == "ok"
    assert data["result"]["child_hash"] == canonical_hash(result.child) and data["result"]["edits"]


def test_gp_backend_is_deterministic_per_seed():
    first = run_round([LLAMA], GP.create({}), FAST, seed=5)
    again = run_round([LLAMA], GP.create({}), FAST, seed=5)
    assert canonical_hash(first.child) == canonical_hash(again.child)


def test_gp_backend_crossover_brings_units_of_the_second_parent():
    result = run_round([LLAMA, MAMBA2], GP.create({}), FAST, seed=1)
    assert result.ok, result.reason
    assert result.transcript.mode == "crossover"
    names = {u.name for u in result.child.units}
    assert names & {u.name for u in MAMBA2.units if not u.is_block}


def test_gp_reviewer_rejects_a_child_already_in_the_archive_and_the_proposer_draws_again():
    known = run_round([LLAMA], GP.create({}), FAST, seed=5).child
    result = run_round([LLAMA], GP.create({}), FAST, seed=5, archive_hashes=[canonical_hash(known)])
    assert result.ok
    reviews = events(result, "reviewer")
    assert reviews[0]["outcome"] == "below threshold" and json.loads(reviews[0]["reply"]["text"])["novelty"] == 1
    assert canonical_hash(result.child) != canonical_hash(known)


# ------------------------------------------------------------------ scripted LLM


def test_a_valid_unit_in_a_fenced_block_is_spliced_and_usage_is_summed():
    client = Scripted(
        proposer=[reply(PROPOSAL, prompt_tokens=100, completion_tokens=20, cost=0.01)],
        reviewer=[reply(GOOD_REVIEW, prompt_tokens=50, completion_tokens=10, cost=0.005, cached=True)],
        implementer=[reply(f"Sure:\n```gab\n{SWIGLU_GELU}\n```\nDone.", prompt_tokens=300, completion_tokens=80,
                           cost=0.02)],
    )
    result = run_round([LLAMA], client, FAST, seed=0, backend="scripted")
    assert result.ok and result.units == {"SwiGLU": "written"}
    assert check(result.child, ["cpu-xs"]).ok and "gelu(Linear(x, hidden))" in unparse(result.child)
    usage = result.transcript.to_dict()["usage"]
    assert usage["by_role"]["implementer"]["prompt_tokens"] == 300
    assert usage["by_role"]["reviewer"]["cached"] == 1
    assert usage["design"]["prompt_tokens"] == 450 and usage["design"]["completion_tokens"] == 110
    assert usage["design"]["cost"] == pytest.approx(0.035)
    proposer_request = client.sent("proposer")[0]
    assert proposer_request.response_schema["title"] == "Proposal"
    assert "design llama" in proposer_request.messages[1]["content"]
    implementer_request = client.sent("implementer")[0]
    assert implementer_request.grammar.startswith("# GBNF (root: unit)")
    assert implementer_request.context["unit"] == "SwiGLU"


def test_invalid_dsl_gets_the_checkers_json_diagnostics_and_is_repaired():
    client = Scripted(proposer=[PROPOSAL], reviewer=[GOOD_REVIEW], implementer=[SWIGLU_BAD_SHAPE, SWIGLU_GELU])
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.ok and result.units == {"SwiGLU": "written"}
    first, second = events(result, "implementer")
    assert first["outcome"] == "repair" and "shape-mismatch" in codes(first)
    bad = next(d for d in first["diagnostics"] if d["code"] == "shape-mismatch")
    assert bad["file"] == "design" and "2 * D" in bad["source"]
    repair = client.sent("implementer")[1].messages
    assert repair[-2] == {"role": "assistant", "content": SWIGLU_BAD_SHAPE}
    assert '"shape-mismatch"' in repair[-1]["content"]
    assert second["outcome"] == "passed" and second["diagnostics"] == []


def test_a_syntax_error_is_located_in_the_reply():
    broken = "Here it is\n" + SWIGLU_GELU.replace("return Linear(", "return Linear((")
    client = Scripted(proposer=[PROPOSAL], reviewer=[GOOD_REVIEW], implementer=[broken, SWIGLU_GELU])
    result = run_round([LLAMA], client, FAST, seed=0)
    syntax = events(result, "implementer")[0]["diagnostics"][0]
    assert syntax["code"] == "syntax" and syntax["file"] == "reply" and syntax["line"] == 4
    assert result.ok


def test_garbage_empty_and_truncated_replies_become_diagnostics():
    client = Scripted(
        proposer=["I would make the MLP wider, it usually helps.", PROPOSAL],
        reviewer=[reply(""), GOOD_REVIEW],
        implementer=[reply(SWIGLU_GELU[:60], finish_reason="length", completion_tokens=20), reply("   "),
                     SWIGLU_GELU],
    )
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.ok
    assert codes(events(result, "proposer")[0]) == ["no-json"]
    assert codes(events(result, "reviewer")[0]) == ["empty-reply"]
    truncated, empty, passed = events(result, "implementer")
    assert codes(truncated)[0] == "truncated-reply" and "syntax" in codes(truncated)
    assert codes(empty) == ["empty-reply"]
    assert passed["outcome"] == "passed"
    assert '"no-json"' in client.sent("proposer")[1].messages[-1]["content"]


def test_off_topic_and_schema_breaking_replies_are_diagnosed():
    wrong_unit = SWIGLU_GELU.replace("unit SwiGLU", "unit Other")
    client = Scripted(
        proposer=[{"title": "x", "units": []}, {**PROPOSAL, "units": [{"name": "Nope", "action": "change",
                                                                      "change": "?"}]}, PROPOSAL],
        reviewer=[{"score": 9}, GOOD_REVIEW],
        implementer=[wrong_unit, SWIGLU_GELU + "\n" + SWIGLU_GELU.replace("SwiGLU", "Extra"), SWIGLU_GELU],
    )
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.ok
    first, second, _ = events(result, "proposer")
    assert set(codes(first)) == {"schema"} and any("motivation" in d["message"] for d in first["diagnostics"])
    assert codes(second) == ["plan"] and "does not exist" in second["diagnostics"][0]["message"]
    assert "schema" in codes(events(result, "reviewer")[0])
    wrong, several, _ = events(result, "implementer")
    assert codes(wrong) == ["wrong-unit"] and codes(several) == ["several-definitions"]


def test_a_unit_that_never_passes_is_rolled_back_and_the_others_stay():
    plan = {**PROPOSAL, "units": [PROPOSAL["units"][0],
                                  {"name": "GroupedQueryAttention", "action": "change", "change": "break it"}]}
    never = "unit GroupedQueryAttention(x: seq[D]) -> seq[D] {\n    return Linear(x, 3 * D)\n}"
    settings = FAST.model_copy(update={"max_repairs": 2})
    client = Scripted(proposer=[plan], reviewer=[GOOD_REVIEW], implementer=[SWIGLU_GELU] + [never] * 3)
    result = run_round([LLAMA], client, settings, seed=0)
    assert result.ok and result.units == {"SwiGLU": "written", "GroupedQueryAttention": "rolled back"}
    attention = events(result, "implementer")[1:]
    assert [e["outcome"] for e in attention] == ["repair", "repair", "rolled back"]
    assert ir.same_design(ir.Design(name="a", units=[result.child.unit("GroupedQueryAttention")]),
                          ir.Design(name="a", units=[LLAMA.unit("GroupedQueryAttention")]))


def test_when_every_unit_is_rolled_back_there_is_no_child():
    settings = FAST.model_copy(update={"max_repairs": 1})
    client = Scripted(proposer=[PROPOSAL], reviewer=[GOOD_REVIEW], implementer=[SWIGLU_BAD_SHAPE] * 2)
    result = run_round([LLAMA], client, settings, seed=0)
    assert result.status == "no-change" and result.child is None
    assert "rolled back" in result.reason and result.transcript.result["status"] == "no-change"


def test_a_low_review_sends_the_proposal_back_for_revision():
    revised = {**PROPOSAL, "title": "GELU gate, wider"}
    client = Scripted(proposer=[PROPOSAL, revised], reviewer=[LOW_REVIEW, GOOD_REVIEW], implementer=[SWIGLU_GELU])
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.ok and result.proposal.title == "GELU gate, wider"
    revise = client.sent("proposer")[1]
    assert revise.context["revision"] == 1 and revise.context["review"]["score"] == 2
    assert "too small a change" in revise.messages[-1]["content"]
    assert [e["outcome"] for e in events(result, "reviewer")] == ["below threshold", "accepted"]


def test_a_proposal_below_the_bar_after_every_revision_is_rejected():
    settings = FAST.model_copy(update={"max_revisions": 1})
    client = Scripted(proposer=[PROPOSAL, PROPOSAL], reviewer=[LOW_REVIEW, LOW_REVIEW], implementer=[])
    result = run_round([LLAMA], client, settings, seed=0)
    assert result.status == "rejected" and "2/5" in result.reason and not client.sent("implementer")


def test_spend_limit_mid_round_stops_cleanly_and_keeps_the_transcript():
    client = Scripted(proposer=[PROPOSAL], reviewer=[GOOD_REVIEW],
                      implementer=[SpendLimitReached("spent $2.00 of $2.00")])
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.status == "spend-limit" and "spent $2.00" in result.reason and result.child is None
    last = result.transcript.events[-1]
    assert last["role"] == "implementer" and last["reply"] is None and last["outcome"] == "spend limit reached"
    assert len(result.transcript.events) == 3


def test_max_cost_per_design_stops_before_the_next_request():
    settings = FAST.model_copy(update={"max_cost": 0.05})
    client = Scripted(proposer=[reply(PROPOSAL, cost=0.03)], reviewer=[reply(GOOD_REVIEW, cost=0.03)],
                      implementer=[SWIGLU_GELU])
    result = run_round([LLAMA], client, settings, seed=0)
    assert result.status == "spend-limit" and not client.sent("implementer")
    assert result.transcript.total.cost == pytest.approx(0.06)


def test_a_backend_that_raises_stops_the_round_with_its_error():
    client = Scripted(proposer=[ConnectionError("refused")])
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.status == "backend-error" and "ConnectionError: refused" in result.reason


def test_with_verify_unit_each_attempt_is_verified_and_its_failures_go_back(monkeypatch):
    import genesys_dsl.verify as verify_package
    from genesys_dsl.syntax.diagnostics import Diagnostic
    from genesys_dsl.verify import VerifyReport

    calls = []

    def verify(design, scale, **kwargs):  # the first attempt "leaks the future"
        calls.append((scale, kwargs["checks"]))
        leak = [Diagnostic(code="verify-causality", message="future tokens change past logits")]
        return VerifyReport(diagnostics=leak if len(calls) == 1 else [], design=design, scale=scale)

    monkeypatch.setattr(verify_package, "verify", verify)
    settings = FlowSettings(reference=False, verify="unit", verify_checks=["causality"])
    client = Scripted(proposer=[PROPOSAL], reviewer=[GOOD_REVIEW], implementer=[SWIGLU_GELU, SWIGLU_GELU])
    result = run_round([LLAMA], client, settings, seed=0)
    assert result.ok and calls == [("cpu-xs", ("causality",))] * 2
    assert codes(events(result, "implementer")[0]) == ["verify-causality"]


# ------------------------------------------------------------------ prompts and config


def test_every_template_is_versioned_and_renders():
    for role, label in versions().items():
        t = template(role)
        assert label == f"{role}/{t.version}" and t.text.startswith("version:")
        assert t.render("system", reference="REF", schema="{}", threshold=4)
    with pytest.raises(AgentError, match="version: N"):
        parse_template("proposer", "=== system ===\nhi\n=== user ===\nyo\n")


def test_config_files_are_checked_with_located_messages(tmp_path):
    good = tmp_path / "agents.toml"
    good.write_text('backend = "openai"\nmax_repairs = 1\n[roles.implementer]\nmax_tokens = 900\n'
                    '[backends.openai]\nbase_url = "http://127.0.0.1:1/v1"\n')
    config = load_config(good)
    assert config.backend == "openai" and config.flow.max_repairs == 1
    assert config.flow.role("implementer").max_tokens == 900 and config.flow.role("proposer").max_tokens == 1024
    assert config.backend_config("m") == {"base_url": "http://127.0.0.1:1/v1", "model": "m"}
    for text, message in [("max_repair = 1\n", "unknown setting 'max_repair'; did you mean 'max_repairs'"),
                          ("review_threshold = 9\n", "review_threshold: Input should be less than or equal to 5"),
                          ("verify = 'sometimes'\n", "verify: Input should be 'unit', 'final' or 'off'"),
                          ("[roles.critic]\n", "unknown role(s) critic"),
                          ("scales = ['cpu-xxl']\n", "scales:"),
                          ("max_repairs = \n", "not valid TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(AgentError, match=str(bad).replace("\\", "\\\\")) as err:
            load_config(bad)
        assert message in str(err.value)
    with pytest.raises(AgentError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


# ------------------------------------------------------------------ register_agents


class EchoClient:
    def complete(self, request):
        return AgentReply(text="{}", model="echo")


def test_a_third_party_backend_registered_through_register_agents_is_found():
    @hookimpl
    def register_agents(register):
        register(AgentBackend("echo", "answers {}", lambda config: EchoClient()))

    registry = build_registry(make_plugin_manager({"thirdparty": types.SimpleNamespace(
        register_agents=register_agents)}), "register_agents")
    backend = registry.lookup("echo")
    assert backend.plugin == "thirdparty" and backend.create({}).complete(None).model == "echo"


def test_a_raising_register_agents_is_reported_with_its_plugin_name():
    @hookimpl
    def register_agents(register):
        raise RuntimeError("no key")

    good = types.SimpleNamespace(register_agents=hookimpl(lambda register: register(GP)))
    registry = build_registry(make_plugin_manager({"broken": types.SimpleNamespace(register_agents=register_agents),
                                                   "good": good}), "register_agents")
    assert [f.plugin for f in registry.failures] == ["broken"] and "no key" in registry.failures[0].message
    assert registry.lookup("gp").plugin == "good"


def test_the_register_agents_example_in_docs_plugins_registers_a_working_backend():
    import re

    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = docs.split("## `register_agents(register)`", 1)[1].split("\n## ", 1)[0]
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        exec(compile(block, "docs/plugins.md", "exec"), namespace)
    registry = build_registry(make_plugin_manager({"docs": types.SimpleNamespace(**namespace)}), "register_agents")
    client = registry.lookup("canned").create({"model": "x"})
    result = run_round([LLAMA], client, FAST, seed=0)
    assert result.status == "no-proposal"  # "{}" is no proposal: diagnosed, retried, given up
    assert all(e["reply"]["model"] == "canned" for e in result.transcript.events)
