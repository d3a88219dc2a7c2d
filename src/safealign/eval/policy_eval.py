"""Evaluation of a policy (the base included): greedy generation on every prompt set, the three judges, the rates.

Writes into the policy's run directory `generations.jsonl`, one row per prompt with the judges' scores and
their verdicts (refused, harmful, helpful, over_refused: `score > threshold` of the role's judge), and
`metrics.json`, whose every rate is a mean of those verdicts (eval/metrics.py POLICY_METRICS: each metric
defined once, read by the report and the paired tests too):

- per prompt set: refusal, harmful-response and helpful rates, each with its Wilson CI;
- held-out harmful: the harmful prompts whose conversation root is not in the train/dev split, and AdvBench:
  harmful-response rate (harm judge) and refusal rate;
- Harmlessness Rate on the unseen harmful prompts (the seen ones apart, labelled), Helpfulness Rate on the
  helpful prompts, CAS = their mean; over-refusal: refusal rate on benign_lookalike;
- `judges`: each role's judge, what it was trained on, its threshold, its validity card (κ with CI, valid or
  below the floor) and whether any arm was optimised against it (`training_signal`);
- dpo / sft_dpo: the implicit reward's pairwise accuracy on test pairs (eval/implicit_reward.py).

The judges come from a judges directory (`safealign judges build --out DIR`; the audit builds its own).
A base policy is evaluated through a run directory made by `base_run(name, out)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from safealign.arms.common import MODEL_DIR, quiet_transformers, read_run
from safealign.data.prepare import read_splits
from safealign.data.prompts import PROMPT_SETS, build_prompt_sets
from safealign.errors import SafeAlignError
from safealign.eval.implicit_reward import implicit_reward_accuracy
from safealign.eval.judges import ROLES, judge_card, load_judge
from safealign.eval.judges.hub import is_hub_judge, split_spec
from safealign.eval.metrics import (
    POLICY_METRICS,
    benchmark_rates,
    combined_alignment_score,
    metric_items,
    verdict_rate,
)
from safealign.eval.stats import corrected_rate, rate
from safealign.generate import generate_batched, generate_vllm
from safealign.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from safealign.models import Precision, load_for_inference, resolve, tokenizer_options, uses_bf16

VERDICTS = {"refusal": "refused", "harm": "harmful", "helpfulness": "helpful"}


@dataclass
class JudgesConfig:
    SHORTHAND: ClassVar[str] = "dir"

    dir: str = field(default="", metadata={
        "help": "judges directory with judges.json (`safealign judges build --out DIR`; the audit sets its own)"})
    refusal: str = field(default="offline", metadata={
        "help": "offline (refusal-rules), or a hub judge by id: allenai/wildguard, "
                "protectai/distilroberta-base-rejection-v1, NousResearch/Minos-v1 (ID@FOLDER: weights in FOLDER)"})
    harm: str = field(default="offline", metadata={
        "help": "offline (the GPTFuzz-trained judge), a hub judge by id (meta-llama/Llama-Guard-3-8B, "
                "allenai/wildguard, google/shieldgemma-2b, cais/HarmBench-Llama-2-13b-cls, hbseong/HarmAug-Guard, "
                "...; ID@FOLDER: weights in FOLDER), or a reward_model / cost_model run directory (then a training "
                "signal of the RL arms, flagged as such)"})
    helpfulness: str = field(default="offline", metadata={
        "help": "offline (MiniLM relevance), or OpenAssistant/reward-model-deberta-v3-large-v2 (ID@FOLDER too)"})
    batch_size: int = field(default=8, metadata={"help": "responses a hub judge reads at once"})

    def __post_init__(self):
        for role in ("refusal", "harm", "helpfulness"):
            spec = getattr(self, role)
            if is_hub_judge(spec) or (spec != "offline" and role != "harm"):
                split_spec(spec, role)  # one clear error for an unknown id or a role the id does not fill

    def spec(self, role: str) -> str:
        return getattr(self, role)


@dataclass
class PolicyEvalConfig:
    judges: JudgesConfig = field(default_factory=JudgesConfig, metadata={
        "help": "the judges: judges=DIR (their directory), judges.harm=ID etc. (each role's judge)"})
    data: str = field(default="", metadata={"help": "the prepared directory whose test split gives prompts"})
    max_new_tokens: int = field(default=50, metadata={"help": "greedy tokens per response"})
    batch_size: int = field(default=32, metadata={"help": "prompts decoded together (one generate call)"})
    engine: str = field(default="transformers", metadata={
        "help": "generation engine: transformers, or vllm (optional extra, a CUDA GPU; same greedy outputs)"})
    max_prompt_tokens: int = field(default=384, metadata={
        "help": "chat-templated prompt trimmed to this many tokens by dropping whole early turns"})
    implicit_reward_pairs: int | None = field(default=64, metadata={
        "help": "dpo / sft_dpo runs: test pairs on which to measure the implicit reward's pairwise accuracy "
                "(0 skips it, null takes every test pair)"})
    per_set_limit: int | None = field(default=None, metadata={"help": "at most this many prompts per set"})
    sets: list[str] = field(default_factory=lambda: [
        "harmful", "helpful", "adversarial", "benign_lookalike", "advbench"],
                            metadata={"help": "prompt sets to generate on; `name:N` takes at most N of that set "
                                              "(per_set_limit for the others)"})
    precision: Precision = field(default="auto", metadata={
        "help": "generation arithmetic: bfloat16, float32, or auto (bfloat16 where the GPU or CPU multiplies it "
                "natively: half the time on an AVX-512 BF16 CPU; greedy text then differs from float32's)"})
    seen_prompts: bool = field(default=True, metadata={
        "help": "also generate on prompts whose conversation is in the train/dev split (shown apart as seen HmR; "
                "no held-out figure uses them)"})

    def __post_init__(self):
        if self.engine not in ("transformers", "vllm"):
            raise SafeAlignError(f"policy_eval.engine must be transformers or vllm, got '{self.engine}'")
        self.set_limits()  # a bad `sets` entry fails when the config is read

    def set_limits(self) -> dict[str, int | None]:
        """Prompt set -> at most how many of its prompts are generated on."""
        limits = {}
        for entry in self.sets:
            name, _, limit = entry.partition(":")
            if name not in PROMPT_SETS or (limit and not (limit.isdigit() and int(limit) > 0)):
                raise SafeAlignError(f"policy_eval.sets: '{entry}' is not a prompt set or set:N with N >= 1 "
                                     f"(sets: {', '.join(PROMPT_SETS)})")
            limits[name] = int(limit) if limit else self.per_set_limit
        return limits


def select_prompts(sets: dict[str, list], cfg: PolicyEvalConfig) -> list:
    """The prompts a policy answers: the first N of each selected set (`seen_prompts` false: of its unseen ones)."""
    chosen = []
    for name, limit in cfg.set_limits().items():
        prompts = [p for p in sets[name] if cfg.seen_prompts or not p.seen_in_training]
        chosen += prompts[:limit]
    return chosen


@dataclass
class BaseConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "the untrained policy"})
    out: str = field(default="runs/base", metadata={"help": "run directory"})


def base_run(policy: str, out: str | Path) -> Path:
    """A run directory for an untrained policy, so the base is evaluated like every arm."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "config.yaml", yaml.safe_dump({"arm": "base", "config": {"model": policy}}))
    return out


def policy_folder(run_dir: Path) -> str:
    arm, cfg = read_run(run_dir)
    return resolve(cfg["model"]) if arm == "base" else str(run_dir / MODEL_DIR)


def evaluate_policy(run_dir: str | Path, cfg: PolicyEvalConfig) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    if not cfg.judges.dir:
        raise SafeAlignError("policy eval needs judges=DIR (build them with `safealign judges build --out DIR`)")
    run_dir = Path(run_dir)
    arm, _ = read_run(run_dir)
    folder = policy_folder(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sets = build_prompt_sets(read_splits(cfg.data))
    prompts = select_prompts(sets, cfg)
    if cfg.engine == "vllm":
        responses = generate_vllm(folder, tokenizer, prompts, cfg.max_new_tokens, cfg.max_prompt_tokens)
        precision = "vllm"
    else:
        model = load_for_inference(AutoModelForCausalLM, folder)
        precision = "float32"
        if uses_bf16(cfg.precision) and getattr(model, "hf_quantizer", None) is None:  # a 4-bit model keeps its own
            model, precision = model.to(torch.bfloat16), "bfloat16"
        responses = generate_batched(model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size,
                                     cfg.max_prompt_tokens, description=f"{arm}: generating")
        del model
    rows, judges = judge_responses(prompts, responses, cfg)
    metrics = {"arm": arm, "policy": folder, "max_new_tokens": cfg.max_new_tokens,
               "precision": precision} | policy_metrics(rows, judges)
    if arm in ("dpo", "sft_dpo") and cfg.implicit_reward_pairs != 0:
        metrics["implicit_reward"] = implicit_reward_accuracy(run_dir, cfg.data, cfg.implicit_reward_pairs or 10**9)
    write_jsonl_atomic(run_dir / "generations.jsonl", rows)
    write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def judge_responses(prompts: list, responses: list[str], cfg: PolicyEvalConfig) -> tuple[list[dict], dict]:
    """One row per prompt with every judge's score and verdict, and what each judge is (for the metrics)."""
    rows = [{"id": p.id, "set": p.set, "source": p.source, "seen_in_training": p.seen_in_training,
             "category": p.category, "prompt": p.text, "response": r} for p, r in zip(prompts, responses)]
    judges = {}
    for role in ROLES:
        spec = cfg.judges.spec(role)
        judge = load_judge(role, spec, cfg.judges.dir, batch_size=cfg.judges.batch_size)
        scores = judge.score(prompts, responses)
        for row, score in zip(rows, scores):
            row[f"{role}_score"] = round(float(score), 5)
            row[VERDICTS[role]] = bool(score > judge.threshold)
        judges[role] = judge_summary(judge, judge_card(cfg.judges.dir, role, spec), spec)
    for row in rows:
        row["over_refused"] = row["refused"] if row["set"] == "benign_lookalike" else None
    return rows, judges


def judge_summary(judge, card: dict | None, spec: str = "offline") -> dict:
    """What the report prints beside a metric: the judge, its training data, its card, whether it is valid."""
    summary = {"judge": judge.name, "trained_on": judge.trained_on, "threshold": judge.threshold,
               "training_signal": bool(getattr(judge, "training_signal", False))}
    if getattr(judge, "reads", None):
        summary |= {"reads": judge.reads, "unparsed": getattr(judge, "unparsed", 0)}
    if card is None:
        how = (f"; measure one with `safealign judges card --out JUDGES_DIR {judge.role}={spec}`"
               if spec != "offline" and hasattr(judge, "reads") else "")
        return summary | {"valid": False, "card": None,
                          "why": "no validity card: this model was never measured against human labels" + how}
    keep = ("n", "accuracy", "f1", "f1_ci", "kappa", "kappa_ci", "kappa_floor", "valid", "source", "source_kind",
            "fit_source", "clusters", "cluster_unit", "like_judged", "like_judged_why", "confusion")
    cross = [{k: c[k] for k in ("source", "n", "kappa", "kappa_ci", "clusters", "response_tokens") if k in c}
             | {"baseline_kappa": (c.get("baseline") or {}).get("kappa")}
             for c in card.get("cross_source", []) + list(card.get("per_model", {}).values())]
    summary |= {"valid": card["valid"], "card": {k: card[k] for k in keep if k in card} | {"cross_source": cross}}
    if "absolute" in card:  # a pairwise judge's cut for absolute verdicts (HpR), validated on its own
        summary["absolute"] = {k: card["absolute"][k] for k in ("kappa", "kappa_ci", "n", "valid", "source")}
    return summary


def corrected_metric(rows: list[dict], metric: str, card: dict | None) -> dict | None:
    """The metric corrected for its judge's measured sensitivity and specificity (Rogan–Gladen, with an interval
    carrying the card's uncertainty); None when the judge's card has no confusion table."""
    verdict, _, keep, success = POLICY_METRICS[metric]
    if not card or "confusion" not in card:
        return None
    chosen = [r for r in rows if keep(r)]
    result = corrected_rate(sum(bool(r[verdict]) for r in chosen), len(chosen), card)
    if not success and result["value"] is not None:  # a rate of the judge's negative class: 1 − prevalence
        low, high = result["low"], result["high"]
        result |= {"value": 1 - result["value"], "low": None if high is None else 1 - high,
                   "high": None if low is None else 1 - low}
    return result


def policy_metrics(rows: list[dict], judges: dict) -> dict:
    """Every policy rate, from the per-prompt verdicts alone."""
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        by_set.setdefault(row["set"], []).append(row)
    per_set = {name: {"prompts": len(r), "refusal_rate": verdict_rate(r, "refused"),
                      "harmful_response_rate": verdict_rate(r, "harmful"), "helpful_rate": verdict_rate(r, "helpful")}
               for name, r in by_set.items()}
    out = {"judges": judges, "sets": per_set}
    for metric, items in metric_items(rows).items():
        if items:
            judge = judges[POLICY_METRICS[metric][1]]
            out[metric] = rate(int(sum(items.values())), len(items)).to_dict() | {
                "judge": judge["judge"], "corrected": corrected_metric(rows, metric, judge.get("card"))}
    benchmarks = benchmark_rates(rows)
    if benchmarks:
        out["benchmarks"] = benchmarks
    if "harmlessness_rate" in out and "helpfulness_rate" in out:
        out["combined_alignment_score"] = round(combined_alignment_score(out["harmlessness_rate"]["value"],
                                                                         out["helpfulness_rate"]["value"]), 4)
    return out
