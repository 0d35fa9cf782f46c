"""The work an executor runs for one candidate: verify, then train and score it at
one rung and seed. Jobs are plain data (the design's text and settings), so they
run the same in this process, in a child process or on another machine."""

from __future__ import annotations

from typing import Any

EVALUATE = "genesys_dsl.evolve.jobs:evaluate_job"


def evaluate_job(payload: dict[str, Any]) -> dict[str, Any]:
    """payload: design (DSL text), ladder, rung, seed, suites, train, options, corpus,
    tokenizer, verify, threads, device. Returns {"status": "ok" | "failed", "reason",
    "message", "scores", "tokens", "wall_seconds", "params", "flops", "verify"}."""
    import torch

    from ..evaluate.config import DataConfig
    from ..evaluate.run import evaluate
    from ..syntax.parse import parse

    torch.set_num_threads(int(payload.get("threads", 1)))
    design = parse(payload["design"], filename=f"<{payload.get('name', 'design')}>")
    verify_report = None
    if payload.get("verify", True):
        from ..evaluate.ladder import place
        from ..verify import verify

        placement = place(design, payload["ladder"], payload["rung"])
        report = verify(design, placement.scale, seed=payload["seed"], checks=("causality", "gradients"),
                        device=payload.get("device") or "cpu", threads=None)
        verify_report = report.to_dict()
        if not report.ok:
            first = report.errors[0]
            return {"status": "failed", "reason": "verify", "message": f"{first.code}: {first.message}",
                    "verify": verify_report}
    result = evaluate(design, ladder=payload["ladder"], rung=payload["rung"], suites=payload.get("suites") or None,
                      seeds=[payload["seed"]], train=payload.get("train") or {}, options=payload.get("options") or {},
                      data=DataConfig(corpus=tuple(payload.get("corpus", ())),
                                      tokenizer=payload.get("tokenizer", "byte")),
                      device=payload.get("device"), work_dir=payload.get("work_dir"))
    base = {"tokens": result.tokens, "wall_seconds": result.wall_seconds, "params": result.placement.params,
            "flops": result.placement.flops_per_token, "verify": verify_report}
    if result.failures:
        failure = next(iter(result.failures.values()))
        return {"status": "failed", "reason": failure["reason"], "message": failure["message"], **base}
    scores = [s.to_dict() for s in result.runs[payload["seed"]]]
    return {"status": "ok", "reason": None, "message": None, "scores": scores, **base}
