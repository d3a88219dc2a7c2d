"""`safealign audit`: every stage on one split in one run directory.

Stages: prepare -> stats -> label -> keyword baseline -> models (resolve and load the real offline models) ->
each discriminative arm (train, then eval) -> shared failures -> judges (the evaluation judges, built from
data no arm trains on, with their validity cards) -> each policy (train, then eval) -> policy comparison ->
report. Each stage records in
`<out>/stages.json` the hash of its config and of its inputs; a rerun skips a stage whose hash is
unchanged and whose outputs are there, and reruns it (and what comes after) otherwise. An interrupted
training stage resumes from its last checkpoint. A stage that fails records its error in stages.json and
the audit goes on with every stage that does not need it; the report (report/build.py, rebuilt on every run
from the run directory's files) shows the error, and the command exits 1.

In the audit, every arm reads the audit's data, writes under the audit's run directory, and uses the
audit's `encoder` as its backbone: those three fields of an arm's section are set by the audit.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Literal

from safealign import __version__
from safealign.arms import (
    POLICIES,
    arm_module,
    arms_of_kind,
    classifier,
    contrastive,
    cost_model,
    dpo,
    reward_model,
    safe_rlhf,
    sft,
    sft_dpo,
)
from safealign.arms.common import MODEL_DIR, input_fingerprints, quiet_transformers
from safealign.config import DataConfig, load_config, to_dict
from safealign.data.curate import LABELS_DIR, LABELS_FORMAT, label_prepared
from safealign.data.prepare import prepare, read_manifest, read_splits
from safealign.data.prompts import embedded
from safealign.data.stats import data_stats
from safealign.data.taxonomy import load_taxonomy
from safealign.errors import SafeAlignError
from safealign.eval.evaluators import EVALUATORS
from safealign.eval.judges import build_judges, like_judged_cards, measure_hub_cards
from safealign.eval.judges.hub import is_hub_judge
from safealign.eval.keyword_baseline import keyword_baselines
from safealign.eval.metrics import HELPFULNESS_WIN, POLICY_METRICS, helpfulness_wins
from safealign.eval.policy_eval import PolicyEvalConfig, base_run, evaluate_policy
from safealign.eval.ranking import rank_policies
from safealign.eval.shared_failures import shared_failures
from safealign.eval.stats import minimum_detectable_difference, paired_bootstrap
from safealign.io import read_jsonl, read_yaml, sha256_file, write_json_atomic, write_jsonl_atomic
from safealign.models import load_options, resolve, tokenizer_options
from safealign.progress import status
from safealign.report.build import build_report

PROFILES = ("offline", "smoke", "gpu", "paper")
DISCRIMINATIVE = {name: arm_module(name) for name in arms_of_kind("discriminative")}
GENERATIVE = {name: arm_module(name) for name in arms_of_kind("generative")}


@dataclass
class AuditConfig:
    out: str = field(default="runs/audit", metadata={"help": "run directory of the audit"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "data stage"})
    encoder: str = field(default="minilm", metadata={
        "help": "backbone of the discriminative arms: an offline name, a local folder or a hub id"})
    policy: str = field(default="smollm2-135m-instruct", metadata={
        "help": "base policy of the generative arms: an offline name, a local folder or a hub id"})
    noise_samples: int = field(default=10, metadata={"help": "S8 pairs sampled into the noise report"})
    arms: list[str] = field(default_factory=lambda: list(DISCRIMINATIVE), metadata={
        "help": "discriminative arms to train and evaluate, in order"})
    reward_model: reward_model.RewardModelConfig = field(default_factory=reward_model.RewardModelConfig,
                                                         metadata={"help": "Arm A"})
    cost_model: cost_model.CostModelConfig = field(default_factory=cost_model.CostModelConfig,
                                                   metadata={"help": "Safe RLHF cost model"})
    contrastive: contrastive.ContrastiveConfig = field(default_factory=contrastive.ContrastiveConfig,
                                                       metadata={"help": "Arm C"})
    classifier: classifier.ClassifierConfig = field(default_factory=classifier.ClassifierConfig,
                                                    metadata={"help": "curation ablation"})
    policies: list[str] = field(default_factory=lambda: list(POLICIES), metadata={
        "help": "policies to train and evaluate (base = the untrained policy; reward_only_rlhf = safe_rlhf with λ=0)"})
    sft: sft.SFTArmConfig = field(default_factory=sft.SFTArmConfig, metadata={"help": "SFT"})
    dpo: dpo.DPOArmConfig = field(default_factory=dpo.DPOArmConfig, metadata={"help": "DPO"})
    sft_dpo: sft_dpo.SFTDPOConfig = field(default_factory=sft_dpo.SFTDPOConfig, metadata={"help": "SFT then DPO"})
    rlhf_start: str = field(default="sft", metadata={
        "help": "initial policy (and KL reference) of safe_rlhf and reward_only_rlhf: sft (the sft run's model, "
                "tuned on safe responses) or base (the policy itself: the Safe RLHF paper starts PPO-Lag from a "
                "helpfulness SFT model, Alpaca-7B; see docs/arms.md)"})
    safe_rlhf: safe_rlhf.SafeRLHFConfig = field(default_factory=safe_rlhf.SafeRLHFConfig,
                                                metadata={"help": "Safe RLHF (reward_only_rlhf: the same, λ=0)"})
    policy_eval: PolicyEvalConfig = field(default_factory=PolicyEvalConfig, metadata={"help": "policy evaluation"})
    arm_defaults: Literal["offline", "paper"] = field(default="offline", metadata={
        "help": "the shipped arm YAMLs the arm sections overlay: offline (configs/arms/ARM.yaml, what `safealign "
                "train ARM` trains) or paper (ARM_paper.yaml)"})

    def __post_init__(self):
        unknown = sorted(set(self.arms) - set(DISCRIMINATIVE))
        if unknown:
            raise SafeAlignError(f"unknown arm '{unknown[0]}' (known: {', '.join(DISCRIMINATIVE)})")
        unknown = sorted(set(self.policies) - set(POLICIES))
        if unknown:
            raise SafeAlignError(f"unknown policy '{unknown[0]}' (known: {', '.join(POLICIES)})")
        if self.policies and not {"reward_model", "cost_model"} <= set(self.arms):
            raise SafeAlignError("policies are judged (and Safe RLHF optimised) with the reward and cost models: "
                                 "keep reward_model and cost_model in arms, or set policies=[]")
        if "sft_dpo" in self.policies and "sft" not in self.policies:
            raise SafeAlignError("sft_dpo starts from the sft policy: add sft to policies")
        if self.rlhf_start not in ("sft", "base"):
            raise SafeAlignError(f"rlhf_start must be sft or base, got '{self.rlhf_start}'")
        if self.rlhf_start == "sft" and {"safe_rlhf", "reward_only_rlhf"} & set(self.policies) \
                and "sft" not in self.policies:
            raise SafeAlignError("rlhf_start=sft: the RL arms start from the sft policy: add sft to policies, or "
                                 "set rlhf_start=base")




def profile_path(profile: str) -> Path:
    return Path(str(resources.files("safealign") / "configs" / "audit" / f"{profile}.yaml"))


ARM_SECTIONS = ("reward_model", "cost_model", "contrastive", "classifier", "sft", "dpo", "sft_dpo", "safe_rlhf")
SET_BY_THE_AUDIT = ("data", "out", "model", "reward_run", "cost_run", "sft_run")  # its data, run dirs, models


def arm_config_path(arm: str, arm_defaults: str = "offline") -> Path:
    """The shipped YAML of an arm: configs/arms/ARM.yaml (what `safealign train ARM` reads), or ARM_paper.yaml."""
    suffix = "" if arm_defaults == "offline" else f"_{arm_defaults}"
    return Path(str(resources.files("safealign") / "configs" / "arms" / f"{arm}{suffix}.yaml"))


def with_arm_defaults(data: dict) -> dict:
    """One source of truth per setting: each arm section of an audit profile is an overlay on that arm's shipped
    YAML (`arm_defaults`: offline, ARM.yaml; paper, ARM_paper.yaml); what the audit sets itself (data, run
    directories, models) is left to it."""
    defaults = data.get("arm_defaults", "offline")
    merged = dict(data)
    for arm in ARM_SECTIONS:
        path = arm_config_path(arm, defaults)
        if not path.is_file():
            raise SafeAlignError(f"arm_defaults={defaults}: no shipped config {path.name} for {arm}")
        base = {k: v for k, v in (read_yaml(path, "config") or {}).items() if k not in SET_BY_THE_AUDIT}
        merged[arm] = base | (data.get(arm) or {})
    return merged


def load_audit_config(profile: str = "offline", path: str | None = None, overrides=()) -> AuditConfig:
    path = Path(path or profile_path(profile))
    return load_config(AuditConfig, path, overrides, data=with_arm_defaults(read_yaml(path, "config") or {}))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """The run directory's record of stages: name -> {hash, seconds, finished} or {hash, failed, finished}.

    A stage whose work raises records its error and the audit goes on with every stage that does not need
    it; a stage that needs a failed one is recorded as not run. Failures are retried on the next run.
    """

    def __init__(self, out: Path):
        self.path = out / "stages.json"
        self.done = json.loads(self.path.read_text()) if self.path.is_file() else {}
        for name in [n for n, r in self.done.items() if "failed" in r]:
            del self.done[name]  # retried
        self.ran: list[str] = []
        self.failed: dict[str, str] = {}

    def ok(self, name: str) -> bool:
        return name in self.done and name not in self.failed

    def hash(self, name: str) -> str | None:
        return self.done.get(name, {}).get("hash")

    def run(self, name: str, key, outputs: list[Path], work, needs=(), fatal: bool = False):
        blocked = [n for n in needs if not self.ok(n)]
        if blocked:
            self.failed[name] = f"not run: it needs {blocked[0]}, which " + (
                "failed" if blocked[0] in self.failed else "did not run")
            return "not run"
        digest = _digest(key)
        record = self.done.get(name)
        if record and record["hash"] == digest and all(p.exists() for p in outputs):
            return "skipped"
        start = time.perf_counter()
        try:
            work()
        except Exception as error:  # noqa: BLE001 - recorded, reported, and the audit goes on
            if fatal:
                raise
            import traceback

            message = f"{type(error).__name__}: {error}"
            self.failed[name] = message
            self.done[name] = {"hash": digest, "failed": message, "traceback": traceback.format_exc()[-4000:],
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_json_atomic(self.path, self.done)
            return f"FAILED ({message})"
        self.done[name] = {"hash": digest, "seconds": round(time.perf_counter() - start, 3),
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.ran.append(name)
        write_json_atomic(self.path, self.done)
        return "ran"


def run_audit(cfg: AuditConfig, log=print) -> dict:
    quiet_transformers()
    started, start = time.strftime("%Y-%m-%dT%H:%M:%S"), time.perf_counter()
    log = numbered(log, stage_count(cfg), start)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = load_taxonomy(cfg.data.taxonomy)  # fail on a bad taxonomy before any long work
    stages = Stages(out)
    data_dir, labels_dir, baseline_dir = out / "data", out / "data" / LABELS_DIR, out / "keyword_baseline"
    write_json_atomic(out / "config.json", {"safealign_version": __version__, "config": to_dict(cfg)})

    # Data stages: bad data stops the audit with one clear error before any long work.
    state = stages.run("prepare", to_dict(cfg.data), [data_dir / "manifest.json"],
                       lambda: prepare(cfg.data, data_dir), fatal=True)
    log(f"prepare   {state}: {data_dir}")
    data_hash = read_manifest(data_dir)["outputs"]
    write_json_atomic(out / "environment.json", environment(cfg, data_hash))
    state = stages.run("stats", data_hash, [out / "stats.json"],
                       lambda: write_json_atomic(out / "stats.json", data_stats(read_splits(data_dir))), fatal=True)
    log(f"stats     {state}: {out / 'stats.json'}")
    label_key = {"data": data_hash, "taxonomy": _taxonomy_key(taxonomy), "format": LABELS_FORMAT,
                 "noise_samples": cfg.noise_samples,
                 "seed": cfg.data.seed}
    state = stages.run("label", label_key, [labels_dir / "manifest.json"],
                       lambda: label_prepared(data_dir, taxonomy, labels_dir, cfg.noise_samples, cfg.data.seed),
                       fatal=True)
    log(f"label     {state}: {labels_dir}")
    state = stages.run("keyword_baseline", label_key, [baseline_dir / "metrics.json"],
                       lambda: write_keyword_baseline(data_dir, labels_dir, taxonomy, baseline_dir))
    log(f"baseline  {state}: {baseline_dir}")
    models = {"encoder": cfg.encoder, "policy": cfg.policy}
    state = stages.run("models", models, [out / "models.json"],
                       lambda: write_json_atomic(out / "models.json", load_models(models)))
    log(f"models    {state}: {out / 'models.json'}")
    for name in cfg.arms:
        arm = DISCRIMINATIVE[name]
        arm_cfg = replace(getattr(cfg, name), data=str(data_dir), out=str(out / name), model=cfg.encoder)
        key = {"config": to_dict(arm_cfg), "data": data_hash, "labels": label_key}
        state = stages.run(f"train_{name}", key, [out / name / "config.yaml"], lambda: arm.train(arm_cfg),
                           needs=["models"])
        log(f"train     {state}: {name}")
        state = stages.run(f"eval_{name}", key, [out / name / "metrics.json"], lambda: EVALUATORS[name](out / name),
                           needs=[f"train_{name}"])
        log(f"eval      {state}: {out / name / 'metrics.json'}")
    if {"reward_model", "contrastive"} <= set(cfg.arms):
        needs = [f"eval_{name}" for name in ("reward_model", "contrastive")]
        state = stages.run("shared_failures", [stages.hash(n) for n in needs], [out / "shared_failures.json"],
                           lambda: shared_failures(out / "reward_model", out / "contrastive", data_dir, out,
                                                   seed=cfg.data.seed), needs=needs)
        log(f"failures  {state}: {out / 'shared_failures.md'}")
    if cfg.policies:
        run_policies(cfg, out, data_dir, stages, data_hash, log)
    write_json_atomic(out / "audit.json", {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                          "wall_seconds": round(time.perf_counter() - start, 2),
                                          "stages_ran": stages.ran, "failed": stages.failed})
    report = build_report(out)
    log(f"report    written: {out / 'report.html'}")
    return {"out": str(out), "stages": stages.done, "ran": stages.ran, "failed": stages.failed,
            "arms": list(cfg.arms), "policies": list(cfg.policies), "report": str(out / "report.html"),
            "recommendation": report["recommendation"]}


def stage_count(cfg: AuditConfig) -> int:
    """The stage lines an audit prints: data (4), models, each arm's train and eval, shared failures, judges,
    each policy's train and eval, the comparison, the report."""
    failures = {"reward_model", "contrastive"} <= set(cfg.arms)
    return 5 + 2 * len(cfg.arms) + failures + (2 + 2 * len(cfg.policies) if cfg.policies else 0) + 1


def numbered(log, total: int, start: float):
    """`log` with each stage line prefixed by [k/N] and the minutes:seconds since the audit started."""
    count = [0]

    def stage_line(line: str):
        count[0] += 1
        elapsed = int(time.perf_counter() - start)
        log(f"[{count[0]:>2}/{total} {elapsed // 60:>2}:{elapsed % 60:02d}] {line}")
    return stage_line


def environment(cfg: AuditConfig, data_hash: dict) -> dict:
    """What a rerun needs to reproduce this one: versions, seed, data hashes, machine."""
    import os
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "sentence-transformers", "datasets",
                    "numpy", "scikit-learn", "google-re2", "gguf"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {"safealign": __version__, "python": platform.python_version(), "packages": versions,
            "seed": cfg.data.seed, "data_sha256": data_hash, "config_sha256": _digest(to_dict(cfg)),
            "machine": {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
                        "memory_gib": round(memory / 2 ** 30, 1) if memory else None,
                        "torch_threads": torch.get_num_threads(),
                        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}


def policy_config(cfg: AuditConfig, name: str, out: Path, data_dir: Path):
    """The arm config of policy `name` as the audit runs it (its data, run dir, base policy and judges)."""
    judges = {"reward_run": str(out / "reward_model"), "cost_run": str(out / "cost_model")}
    if name in ("safe_rlhf", "reward_only_rlhf"):
        extra = {"fixed_lambda": 0.0} if name == "reward_only_rlhf" else {}
        start = str(out / "sft" / MODEL_DIR) if cfg.rlhf_start == "sft" else cfg.policy
        return replace(cfg.safe_rlhf, data=str(data_dir), out=str(out / name), model=start, **judges, **extra)
    if name == "sft_dpo":
        return replace(cfg.sft_dpo, data=str(data_dir), out=str(out / name), sft_run=str(out / "sft"))
    return replace(getattr(cfg, name), data=str(data_dir), out=str(out / name), model=cfg.policy)


def policy_eval_config(cfg: AuditConfig, out: Path, data_dir: Path) -> PolicyEvalConfig:
    """The policy eval config as the audit runs it: the profile's, with the judges built in `out` and its data."""
    return replace(cfg.policy_eval, judges=replace(cfg.policy_eval.judges, dir=str(out / "judges")),
                   data=str(data_dir))


def run_policies(cfg: AuditConfig, out: Path, data_dir: Path, stages: Stages, data_hash, log):
    judges_dir = out / "judges"
    # A hub harm judge gets its card here; a hub refusal judge's card needs XSTest completions (not shipped:
    # `safealign judges card --xstest`), and the one hub helpfulness judge is the study's own rater (no card).
    hub = {"harm": cfg.policy_eval.judges.harm} if is_hub_judge(cfg.policy_eval.judges.harm) else {}
    judge_key = {"seed": cfg.data.seed, "encoder": cfg.encoder, "format": 2, "shipped": judge_data_hashes(),
                 "hub": hub}

    def judges():
        build_judges(judges_dir, seed=cfg.data.seed, encoder=cfg.encoder, log=lambda *a: None)
        if hub:  # each hub judge's card on the same human-labelled rows as the offline judge of its role
            measure_hub_cards(judges_dir, hub, seed=cfg.data.seed, batch_size=cfg.policy_eval.judges.batch_size)

    state = stages.run("judges", judge_key, [judges_dir / "judges.json"], judges, needs=["models"])
    log(f"judges    {state}: {judges_dir / 'judges.json'}")
    eval_cfg = policy_eval_config(cfg, out, data_dir)
    for name in cfg.policies:
        if name == "base":
            key = {"policy": cfg.policy}
            state = stages.run("train_base", key, [out / "base" / "config.yaml"],
                               lambda: base_run(cfg.policy, out / "base"), needs=["models"])
        else:
            arm_cfg = policy_config(cfg, name, out, data_dir)
            arm = GENERATIVE["safe_rlhf" if name == "reward_only_rlhf" else name]
            after_sft = name == "sft_dpo" or ("rlhf" in name and cfg.rlhf_start == "sft")
            needs = ["models"] + (list(RL_SIGNALS) if "rlhf" in name else []) + (["train_sft"] if after_sft else [])
            state = stages.run(f"train_{name}", policy_train_key(arm_cfg, data_hash, stages, after_sft),
                               [out / name / "config.yaml"], lambda: arm.train(arm_cfg), needs=needs)
        log(f"train     {state}: {name}")
        key = {"policy": stages.hash(f"train_{name}"), "eval": to_dict(eval_cfg), "judges": stages.hash("judges"),
               "inputs": input_fingerprints(eval_cfg) | input_fingerprints(eval_cfg.judges),  # a run dir as judge
               "like_judged_cards": like_judged_cards(judges_dir)}  # `safealign judges check --of-run`
        state = stages.run(f"eval_{name}", key, [out / name / "metrics.json"],
                           lambda: evaluate_policy(out / name, eval_cfg), needs=[f"train_{name}", "judges"])
        log(f"eval      {state}: {out / name / 'metrics.json'}")
    evaluated = [name for name in cfg.policies if stages.ok(f"eval_{name}")]
    key = {name: stages.hash(f"eval_{name}") for name in evaluated} | {"format": 2}
    state = stages.run("policy_comparison", key, [out / "policies.json"],
                       lambda: write_json_atomic(out / "policies.json",
                                                 compare_policies(out, evaluated, seed=cfg.data.seed)),
                       needs=["eval_base"] if "base" in cfg.policies else [])
    log(f"compare   {state}: {out / 'policies.json'}")


RL_SIGNALS = ("train_reward_model", "train_cost_model")  # the stages whose runs the RL arms optimise against


def policy_train_key(arm_cfg, data_hash, stages: Stages, after_sft: bool) -> dict:
    """What a policy's training reads: its config, the data, the reward and cost runs, the SFT run it starts
    from, and the labels when it trains on the Clean split (a relabelling changes which pairs those are)."""
    return {"config": to_dict(arm_cfg), "data": data_hash,
            "signals": [stages.hash(n) for n in RL_SIGNALS],
            "after": stages.hash("train_sft") if after_sft else None,
            "labels": stages.hash("label") if arm_cfg.train_on == "clean" else None}


def judge_data_hashes() -> dict[str, str]:
    """sha256 of the human-labelled data and the card the judges are built from (shipped in the package)."""
    files = [embedded("embedded", "gptfuzz", f"{split}.csv.gz") for split in ("train", "evaluate")] + [
        embedded("embedded", "pandalm", "testset-v1.json.gz"), embedded("embedded", "hhh", "hhh_alignment.jsonl")]
    shipped = [embedded("judges", name) for name in ("refusal_card.json", "harm_card.json", "harm_judge.npz",
                                                      "helpfulness_card.json", "helpfulness_judge.npz")]
    return {f.name: sha256_file(f) for f in files + shipped}


def helpfulness_win_rate(policy_rows: list[dict], base_rows: list[dict], seed: int = 0) -> dict | None:
    """The share of helpful prompts on which the helpfulness judge prefers the policy's response to the base's
    (ties ½), with a 95% interval and p-value from a bootstrap over prompts against 50%, and the smallest
    difference from 50% this many prompts detect (5% test, 80% power)."""
    wins = list(helpfulness_wins(policy_rows, base_rows).values())
    if not wins:
        return None
    test = paired_bootstrap(wins, [0.5] * len(wins), seed=seed)
    return {"value": round(sum(wins) / len(wins), 4), "low": round(0.5 + test["low"], 4),
            "high": round(0.5 + test["high"], 4), "n": len(wins), "p_value": test["p_value"],
            "minimum_detectable_difference": round(minimum_detectable_difference(len(wins), 0.5, samples=1), 4)}


def compare_policies(out: Path, policies: list[str], seed: int = 0) -> dict:
    """Every policy's rates and their gain over base, and a Bradley–Terry ranking from per-prompt verdicts."""
    metrics = {name: json.loads((out / name / "metrics.json").read_text()) for name in policies}
    generations = {name: read_jsonl(out / name / "generations.jsonl") for name in policies}
    table = {}
    for name, m in metrics.items():
        table[name] = {metric: m.get(metric, {}).get("value") for metric in POLICY_METRICS}
        table[name]["combined_alignment_score"] = m.get("combined_alignment_score")
    if "base" in table:
        for name, row in table.items():
            row["gain_over_base"] = {k: (round(v - table["base"][k],
                                               4) if v is not None and table["base"][k] is not None
                                         else None) for k, v in list(row.items()) if k != "gain_over_base"}
    judges = next(iter(metrics.values()))["judges"] if metrics else {}
    use_helpfulness = bool(judges.get("helpfulness", {}).get("valid"))
    for name in table:
        if name != "base" and "base" in generations:
            table[name][HELPFULNESS_WIN] = helpfulness_win_rate(generations[name], generations["base"], seed)
    return {"table": table, "judges": judges,
            "ranking": rank_policies(generations, use_helpfulness, seed=seed) if generations else {}}


def load_models(models: dict[str, str]) -> dict:
    """Resolve each model offline and load it for real: its folder, class and parameter count."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    loaded = {}
    for role, name in models.items():
        folder = resolve(name)
        with status(f"loading {role} model {name}"):
            start = time.perf_counter()
            model = (AutoModelForCausalLM if role == "policy" else AutoModel).from_pretrained(folder, **load_options())
            tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
        loaded[role] = {"name": name, "resolved": folder, "class": type(model).__name__,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "vocab_size": len(tokenizer), "load_seconds": round(time.perf_counter() - start, 2)}
    return loaded


def _taxonomy_key(taxonomy) -> dict:
    return {"version": taxonomy.version,
            "patterns": {c.id: list(c.patterns) for c in taxonomy.categories}}


def write_keyword_baseline(data_dir: Path, labels_dir: Path, taxonomy, out: Path) -> dict:
    """Keyword baselines on the test split, raw and Clean (from the label stage's Clean split)."""
    test = read_splits(data_dir)["test"]
    clean_ids = {row["id"] for row in read_jsonl(labels_dir / "clean" / "test.jsonl")}
    metrics, outputs = {"taxonomy_version": taxonomy.version}, {}
    for name, pairs in (("raw", test), ("clean", [p for p in test if p.id in clean_ids])):
        metrics[name], pairwise, binary = keyword_baselines(pairs, taxonomy)
        outputs[name] = pairwise
    write_jsonl_atomic(out / "predictions.jsonl",
                       ({"subset": name} | row for name, rows in outputs.items() for row in rows))
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
