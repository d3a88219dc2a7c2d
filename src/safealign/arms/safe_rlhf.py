"""Safe RLHF: maximise reward − λ·cost, with λ moved by PPO-Lag's multiplier update to hold the expected cost under d.

Per step, for B red-team prompts (the train split's contexts; `train_on=clean`: those whose rejected response
is harmful), K responses are sampled from the policy itself (temperature 1, no top-k or top-p truncation: the π
whose log-probabilities are differentiated is the π that sampled) and scored by the run's reward model R
(helpfulness) and cost model C (harmlessness). With R and C divided by their running standard deviations:

    log λ ← min(log λ_max, log λ + η_λ clip((J_C − d)/σ_C, ±5) λ)  (PPO-Lag: SGD on −(J_C − d)·λ w.r.t. log λ)
    s_i   = (R_i − λ C_i) / (1 + λ) − β_KL Σ_t log π/π_ref(y_i)   (Safe RLHF's scaled Lagrangian + sequence KL)
    A_i   = s_i − mean_{j≠i} s_j                                  (leave-one-out baseline among the K samples)
    loss  = −mean_i A_i · log π(y_i|x)

J_C is the mean cost of the last `cost_window` sampled responses (PPO-Lag's episode-cost window, 128 there; sized
to this scale's 8–64 samples a step), updated before the step as PPO-Lag does, so the λ logged with a step
(`lambda`) is the one that weighted its samples; `lambda_prev` is the one before. λ never reaches 0 (it moves
in log space) and stays under λ_max (PPO-Lag's defaults: λ₀ 1, η_λ 0.1, λ_max 5).

d, the bound on the expected cost, is 0 by default, as in the paper: the cost model's sign term puts C > 0 on
unsafe and C < 0 on safe responses (losses.cost_loss), so "E[C] <= 0" reads "on average on the safe side", and
`unsafe_share` is the share of samples with C > 0. `cost_threshold: null` instead calibrates d at every round's
start (the policy's mean cost on `calibration_prompts` × K samples minus `cost_margin` std), a named option
kept for cost models without a sign term. Either way the calibration samples start the running moments of R
and C, and the rule is recorded in the run and shown by the report.

The losses are in losses.py (safe_rlhf_score, kl_shaped_scores, leave_one_out, policy_gradient_loss,
kl_penalty, kl_estimate, log_lambda_update). `kl_estimator: sequence` (default) folds the sequence-level KL
into the score; `k2` / `k3` are per-token KL losses kept as options (see losses.py for the gradient each
one has). The k3 value, an unbiased estimate of KL(π‖π_ref), is what is logged. π_ref is the initial policy
(the adapters switched off). LoRA dropout is off both when sampling and in the update (the model stays in
eval mode).

With `fixed_lambda` set (0 for reward-only RLHF) λ never moves: that run, beside this one, is the comparison
Safe RLHF is about.

Why not trl: trl 1.16 has no PPO trainer, and its RLOO/GRPO trainers weight several reward functions with
fixed weights, while here the weight of the cost changes every step with λ. The critic-free leave-one-out
estimator (as in RLOO) avoids a value model, which a 2-core machine cannot afford.

Rounds (`rounds` > 1): after each round's steps, the policy answers red-team prompts twice, the judges
relabel each pair (chosen = the lower cost, ties broken by reward), the pairs are added to every earlier
round's training pairs, the reward and cost models are retrained on them, and the next round recalibrates
for the retrained cost model and optimises against both.
Each step checkpoints the adapters, the optimiser, log λ, the cost window, the running moments and the step;
an interrupted run resumes there and ends equal to an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from safealign import losses
from safealign.arms import cost_model, reward_model
from safealign.arms.common import (
    CHECKPOINTS,
    DONE,
    MODEL_DIR,
    RunScorer,
    is_trained,
    labelled_data,
    load_split,
    quiet_transformers,
    read_run,
    start_run,
)
from safealign.arms.policy import PolicyConfig, load_policy, lora_config, train_pairs
from safealign.data.hh_rlhf import context_text
from safealign.data.prompts import Prompt
from safealign.errors import SafeAlignError
from safealign.generate import left_pad, trim_context
from safealign.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from safealign.models import Precision, inference_device

ARM = "safe_rlhf"


@dataclass
class SafeRLHFConfig(PolicyConfig):
    reward_run: str = field(default="runs/reward_model", metadata={"help": "reward_model run (the reward R)"})
    cost_run: str = field(default="runs/cost_model", metadata={"help": "cost_model run (the cost C)"})
    steps: int = field(default=12, metadata={"help": "policy updates per round"})
    rounds: int = field(default=1, metadata={"help": "rounds of optimise -> relabel red-team pairs -> retrain judges"})
    prompts_per_step: int = field(default=4, metadata={"help": "B: red-team prompts per step"})
    samples_per_prompt: int = field(default=4, metadata={"help": "K: sampled responses per prompt"})
    max_response_tokens: int = field(default=32, metadata={"help": "tokens sampled per response"})
    temperature: float = field(default=1.0, metadata={
        "help": "sampling temperature; log π is taken at the same temperature: the sampler is the π differentiated"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the adapters"})
    kl_coef: float = field(default=0.05, metadata={"help": "β_KL of the KL penalty to the initial policy"})
    cost_threshold: float | None = field(default=0.0, metadata={
        "help": "d: the expected cost to hold; 0 (the paper's): C > 0 is unsafe by the cost model's sign term; "
                "null: calibrated each round as the policy's mean cost minus cost_margin std (it then binds)"})
    cost_margin: float = field(default=0.5, metadata={"help": "calibrated d (cost_threshold: null) sits this many "
                                                               "cost std below the policy's mean cost"})
    calibration_prompts: int = field(default=16, metadata={
        "help": "red-team prompts answered K times at each round's start to start the moments (and calibrate d)"})
    kl_estimator: Literal["sequence", "k2", "k3"] = field(default="sequence", metadata={
        "help": "sequence: −β Σ_t log π/π_ref folded into each score (gradient of the sequence KL); "
                "k2 / k3: per-token KL losses (see losses.py)"})
    lambda_init: float = field(default=1.0, metadata={"help": "λ₀ (PPO-Lag: 1)"})
    lambda_lr: float = field(default=0.1, metadata={"help": "η_λ: SGD step on log λ (PPO-Lag: 0.1)"})
    lambda_max: float | None = field(default=5.0, metadata={"help": "λ_max (PPO-Lag: 5); null: unbounded"})
    cost_window: int = field(default=32, metadata={
        "help": "J_C is the mean cost of the last this many sampled responses (PPO-Lag's episode window: 128)"})
    fixed_lambda: float | None = field(default=None, metadata={"help": "hold λ here (0: reward-only RLHF)"})
    relabel_prompts: int = field(default=32, metadata={"help": "red-team prompts answered twice per round to relabel"})
    max_train_pairs: int | None = field(default=None,
                                        metadata={"help": "red-team prompt pool (None: every train context)"})
    save_steps: int = field(default=1, metadata={"help": "checkpoint every this many steps"})
    precision: Precision = field(default="float32", metadata={
        "help": "float32 (auto means float32 here): the RL arms sample and differentiate one π in float32; "
                "bfloat16 is refused (sampling in it would need an importance correction SafeAlign does not ship)"})

    def __post_init__(self):
        super().__post_init__()
        if self.precision == "bfloat16":
            raise SafeAlignError("precision: the RL arms run in float32 (their samples must come from the π they "
                                 "differentiate); use float32 or auto")
        if self.samples_per_prompt < 2:
            raise SafeAlignError("samples_per_prompt must be >= 2 (the leave-one-out baseline needs a second sample)")
        if self.steps < 1 or self.rounds < 1 or self.lambda_init <= 0 or self.lambda_lr < 0 or self.cost_window < 1:
            raise SafeAlignError("steps, rounds and cost_window must be >= 1; lambda_init > 0 (λ moves in log space); "
                                 "lambda_lr >= 0")
        if self.lambda_max is not None and self.lambda_max < self.lambda_init:
            raise SafeAlignError(f"lambda_max ({self.lambda_max}) must be >= lambda_init ({self.lambda_init})")
        if self.temperature <= 0:
            raise SafeAlignError("temperature must be > 0")
        if self.fixed_lambda is not None and self.fixed_lambda < 0:
            raise SafeAlignError("fixed_lambda must be >= 0")
        if self.calibration_prompts < 1 or self.cost_margin < 0:
            raise SafeAlignError("calibration_prompts must be >= 1 and cost_margin >= 0")


def update_moments(moments: dict, values: list[float]) -> dict:
    """Running count, mean and sum of squared deviations, updated with `values` one at a time (Welford)."""
    n, mean, m2 = moments["n"], moments["mean"], moments["m2"]
    for value in values:
        n += 1
        delta = value - mean
        mean += delta / n
        m2 += delta * (value - mean)
    return {"n": n, "mean": mean, "m2": m2}


def moments_std(moments: dict) -> float:
    """Sample standard deviation of the running moments; 1 while it is undefined or zero."""
    if moments["n"] < 2 or moments["m2"] <= 0:
        return 1.0
    return (moments["m2"] / (moments["n"] - 1)) ** 0.5


NO_MOMENTS = {"n": 0, "mean": 0.0, "m2": 0.0}


# --------------------------------------------------------------------------- training


def train(cfg: SafeRLHFConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir

    quiet_transformers()
    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    pool = [pair.context for pair, _ in train_pairs(prepared, cfg)]
    reward_run, cost_run = Path(cfg.reward_run), Path(cfg.cost_run)
    for judge in (reward_run, cost_run):
        if not is_trained(judge):
            raise SafeAlignError(f"{judge}: no finished judge run there (train reward_model and cost_model first)")
    saved = _load_state(run_dir)
    state = saved or {"round": 0, "step": 0, "lambda": _lambda0(cfg), "log_lambda": math.log(cfg.lambda_init),
                      "cost_window": [], "log": [],
                      "reward_run": str(reward_run), "cost_run": str(cost_run), "pairs_file": None, "calibrations": []}
    model, tokenizer = load_policy(cfg.model, cfg)
    import torch
    from peft import get_peft_model, set_peft_model_state_dict

    torch.manual_seed(cfg.seed)
    if getattr(model, "hf_quantizer", None) is None:  # a 4-bit policy is placed by its loader
        model = model.to(inference_device())
    model = get_peft_model(model, lora_config(cfg))
    model.eval()  # LoRA dropout off when sampling and in the update: the π differentiated is the π that sampled
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    if saved:  # a checkpoint is saved with every state: resume its adapters and optimiser
        set_peft_model_state_dict(model,
                                  torch.load(run_dir / CHECKPOINTS / "adapter.pt", map_location="cpu",
                                             weights_only=True))
        optimizer.load_state_dict(torch.load(run_dir / CHECKPOINTS / "optimizer.pt", map_location="cpu",
                                             weights_only=True))
    while state["round"] < cfg.rounds:
        judges = _judges(state)
        if len(state["calibrations"]) == state["round"]:  # d and the moments, for this round's cost model
            state["calibrations"].append(calibrate(model, tokenizer, judges, pool, state["round"], cfg))
            _save_state(run_dir, model, optimizer, state)
        calibration = state["calibrations"][state["round"]]
        d = calibration["cost_threshold"]
        while state["step"] < cfg.steps:
            rng = random.Random(f"{cfg.seed}-{state['round']}-{state['step']}")
            torch.manual_seed(rng.randrange(2**31))  # sampling per step: a resumed run repeats it
            prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens)
                       for c in rng.sample(pool, cfg.prompts_per_step)]
            record, moments = rl_step(model, tokenizer, optimizer, judges, prompts, state, calibration["moments"],
                                      d, cfg)
            calibration["moments"] = moments
            state["step"] += 1
            state["log"].append({"round": state["round"], "step": state["step"]} | record | {"cost_threshold": d})
            if state["step"] % cfg.save_steps == 0 or state["step"] == cfg.steps:
                _save_state(run_dir, model, optimizer, state)
        if state["round"] + 1 < cfg.rounds:
            state |= relabel_and_retrain(model, tokenizer, judges, pool, prepared, run_dir, state, cfg)
        state["round"] += 1
        state["step"] = 0 if state["round"] < cfg.rounds else state["step"]
        _save_state(run_dir, model, optimizer, state)
    _finish(run_dir, model, tokenizer, state, cfg)
    return run_dir


def calibrate(model, tokenizer, judges, pool: list, round_index: int, cfg: SafeRLHFConfig) -> dict:
    """d and the starting moments of R and C, from K samples of the current policy on red-team prompts."""
    import torch

    rng = random.Random(f"{cfg.seed}-calibrate-{round_index}")
    torch.manual_seed(rng.randrange(2**31))
    prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens)
               for c in rng.sample(pool, min(cfg.calibration_prompts, len(pool)))]
    texts = sample(model, tokenizer, prompts, cfg.samples_per_prompt, cfg)["texts"]
    rewards, costs = score(judges, prompts, texts, cfg.samples_per_prompt)
    moments = {"reward": update_moments(NO_MOMENTS, rewards.view(-1).tolist()),
               "cost": update_moments(NO_MOMENTS, costs.view(-1).tolist())}
    mean, std = moments["cost"]["mean"], moments_std(moments["cost"])
    if cfg.cost_threshold is not None:
        d = cfg.cost_threshold
        rule = ("0, the paper's: the cost model's sign term puts C > 0 on unsafe responses" if d == 0
                else "set in the config (cost_threshold)")
    else:
        d = mean - cfg.cost_margin * std
        rule = (f"the policy's mean cost on {len(texts)} sampled responses to {len(prompts)} red-team prompts "
                f"({mean:.3f}) minus {cfg.cost_margin:g} × their std ({std:.3f}): the policy at the round's start "
                f"violates it")
    return {"round": round_index, "cost_threshold": round(d, 5), "rule": rule, "samples": len(texts),
            "mean_cost": round(mean, 5), "std_cost": round(std, 5), "mean_reward": round(moments["reward"]["mean"], 5),
            "violating_share": round(float((costs > d).float().mean()), 4),
            **_scores(rewards, costs), "moments": moments}


def _lambda0(cfg: SafeRLHFConfig) -> float:
    return cfg.fixed_lambda if cfg.fixed_lambda is not None else cfg.lambda_init


def _judges(state: dict) -> dict:
    return {"reward": RunScorer(state["reward_run"]), "cost": RunScorer(state["cost_run"])}


def score(judges: dict, prompts: list[list[dict]], texts: list[str], k: int):
    """Raw reward and cost of every sample, shaped (B, K)."""
    import torch

    as_prompts = [Prompt(f"rl-{i}", "red_team", tuple(m), "train") for m in prompts for i in range(k)]
    rewards = torch.tensor(judges["reward"].score(as_prompts, texts), dtype=torch.float32).view(-1, k)
    costs = torch.tensor(judges["cost"].score(as_prompts, texts), dtype=torch.float32).view(-1, k)
    return rewards, costs


VIOLATION_CLIP = 5.0  # cost std units: a near-constant cost (a tiny std) must not throw log λ to ±∞


def next_log_lambda(log_lambda: float, window: list[float], d: float, cost_std: float, cfg: SafeRLHFConfig) -> float:
    """PPO-Lag's update of log λ from the window's mean episode cost minus d, in cost std units (so that η_λ
    means the same whatever the cost model's scale; PPO-Lag clamps its multiplier loss for the same reason),
    clipped to ±VIOLATION_CLIP. λ is kept as log λ, as PPO-Lag keeps it, so it never reaches 0."""
    log_max = math.log(cfg.lambda_max) if cfg.lambda_max is not None else None
    violation = max(-VIOLATION_CLIP, min(VIOLATION_CLIP, (sum(window) / len(window) - d) / cost_std))
    return losses.log_lambda_update(log_lambda, violation, 0.0, cfg.lambda_lr, log_max)


def advantages_of(rewards, costs, logp, ref_logp, mask, lam: float, moments: dict, cfg: SafeRLHFConfig):
    """Leave-one-out advantages of the scaled Lagrangian of (R, C), with the sequence KL folded in when
    kl_estimator is `sequence`. rewards, costs (B, K); logp, ref_logp, mask (B*K, T) -> (B*K,)."""
    scores = losses.safe_rlhf_score(rewards / moments_std(moments["reward"]), costs / moments_std(moments["cost"]),
                                    lam).view(-1).to(logp.device)  # (B*K,)
    if cfg.kl_estimator == "sequence":
        scores = losses.kl_shaped_scores(scores, logp, ref_logp, mask, cfg.kl_coef)
    return losses.leave_one_out(scores.view(rewards.shape)).view(-1)


def rl_step(model, tokenizer, optimizer, judges, prompts: list[list[dict]], state: dict, moments: dict, d: float,
            cfg: SafeRLHFConfig) -> tuple[dict, dict]:
    """One policy update on B prompts x K samples: moves state's λ and cost window; returns the step's log
    record and the updated running moments."""
    import torch

    k = cfg.samples_per_prompt
    batch = sample(model, tokenizer, prompts, k, cfg)  # B*K sequences
    rewards, costs = score(judges, prompts, batch["texts"], k)  # (B, K) each
    moments = {"reward": update_moments(moments["reward"], rewards.view(-1).tolist()),
               "cost": update_moments(moments["cost"], costs.view(-1).tolist())}
    state["cost_window"] = (state["cost_window"] + costs.view(-1).tolist())[-cfg.cost_window:]
    lambda_prev = state["lambda"]
    if cfg.fixed_lambda is None:
        state["log_lambda"] = next_log_lambda(state["log_lambda"], state["cost_window"], d,
                                              moments_std(moments["cost"]), cfg)
        state["lambda"] = math.exp(state["log_lambda"])
    lam = state["lambda"]
    mask = batch["response_mask"]
    logp = sequence_logprobs(model, batch, cfg.temperature)  # (B*K, R) log π of each response token, as sampled
    with torch.no_grad(), model.disable_adapter():
        ref_logp = sequence_logprobs(model, batch, cfg.temperature)
    advantages = advantages_of(rewards, costs, logp.detach(), ref_logp, mask, lam, moments, cfg)  # (B*K,)
    loss = losses.policy_gradient_loss(advantages, (logp * mask).sum(-1))
    if cfg.kl_estimator != "sequence":
        loss = loss + cfg.kl_coef * losses.kl_penalty(logp, ref_logp, mask, cfg.kl_estimator).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    window = state["cost_window"]
    return {"lambda_prev": lambda_prev, "lambda": lam, "window_cost": round(sum(window) / len(window), 5),
            "window_samples": len(window), "loss": round(loss.item(), 5),
            "mean_reward": round(rewards.mean().item(), 5),
            "mean_cost": round(costs.mean().item(), 5), "unsafe_share": round((costs > 0).float().mean().item(), 4),
            "kl": round(losses.kl_estimate(logp, ref_logp, mask).mean().item(), 5),
            "response_tokens": int(mask.sum().item()), **_scores(rewards, costs)}, moments


def _scores(rewards, costs) -> dict:
    """Every sample's raw R and C, in sample order, for the log (the report correlates them: eval.stats.pearson)."""
    return {"rewards": [round(x, 5) for x in rewards.view(-1).tolist()],
            "costs": [round(x, 5) for x in costs.view(-1).tolist()]}


# Pure sampling from π at the temperature: transformers' generation defaults (top_k 50) would truncate it.
SAMPLER = {"do_sample": True, "top_k": 0, "top_p": 1.0, "min_p": None, "typical_p": 1.0, "repetition_penalty": 1.0}


def sample(model, tokenizer, prompts: list[list[dict]], k: int, cfg: SafeRLHFConfig) -> dict:
    """K sampled responses per prompt: left-padded prompt+response ids and a mask over response tokens."""
    import torch

    encoded = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
               for m in prompts for _ in range(k)]
    ids, mask = left_pad(encoded, tokenizer.pad_token_id)  # (B*K, P)
    ids, mask = ids.to(model.device), mask.to(model.device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=cfg.max_response_tokens,
                             pad_token_id=tokenizer.pad_token_id, **SAMPLER | {"temperature": cfg.temperature})
    response = out[:, ids.shape[1]:]  # (B*K, R)
    eos = tokenizer.eos_token_id
    alive = torch.ones_like(response)
    if eos is not None:  # tokens after the first eos are padding; the eos itself is kept
        after_eos = (response == eos).long().cumsum(-1) - (response == eos).long()
        alive = (after_eos == 0).long()
    texts = [tokenizer.decode(r[a.bool()], skip_special_tokens=True).strip() for r, a in zip(response, alive)]
    return {"input_ids": out, "attention_mask": torch.cat([mask, alive], dim=1),
            "response_mask": alive.float(), "prompt_length": ids.shape[1], "texts": texts}


def sequence_logprobs(model, batch: dict, temperature: float = 1.0):
    """log π(token) for every response token, π at the sampling temperature. -> (N, R)
    The LM head projects only the positions that predict the response (logits_to_keep): the prompt's logits
    were two thirds of a (N, T, V) float32 tensor nothing read."""
    start = batch["prompt_length"]
    keep = batch["input_ids"].shape[1] - start + 1  # positions start-1 .. T-1
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    return losses.token_logprobs(logits[:, :-1] / temperature, batch["input_ids"][:, start:])


# --------------------------------------------------------------------------- rounds, checkpoints


def relabel_and_retrain(model, tokenizer, judges, pool, prepared: Path, run_dir: Path, state: dict,
                        cfg: SafeRLHFConfig) -> dict:
    """Answer red-team prompts twice, relabel the pairs with the judges, retrain the judges on every earlier
    round's pairs plus the new ones."""
    round_index = state["round"]
    round_dir = run_dir / f"round_{round_index + 1}"
    rng = random.Random(f"{cfg.seed}-relabel-{round_index}")
    prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens)
               for c in rng.sample(pool, min(cfg.relabel_prompts, len(pool)))]
    texts = sample(model, tokenizer, prompts, 2, cfg)["texts"]
    rewards, costs = (scores.view(-1).tolist() for scores in score(judges, prompts, texts, 2))
    rows = []
    for i, messages in enumerate(prompts):
        a, b = 2 * i, 2 * i + 1
        if not texts[a] or not texts[b] or texts[a] == texts[b]:
            continue
        better, worse = (a, b) if (costs[a], -rewards[a]) < (costs[b], -rewards[b]) else (b, a)
        dialogue = "\n\n" + context_text(messages)
        rows.append({"chosen": f"{dialogue}\n\nAssistant: {texts[better]}",
                     "rejected": f"{dialogue}\n\nAssistant: {texts[worse]}"})
    earlier = (read_jsonl(state["pairs_file"]) if state["pairs_file"]
               else [json.loads(l) for l in _hh_rows(prepared)])
    write_jsonl_atomic(round_dir / "relabelled_pairs.jsonl", rows)
    write_jsonl_atomic(round_dir / "train_pairs.jsonl", earlier + rows)
    data = labelled_data(str(round_dir / "train_pairs.jsonl"), round_dir, cfg.seed)
    judge_cfgs = {}
    for name, arm, run in (("reward", reward_model, judges["reward"].run_dir),
                           ("cost", cost_model, judges["cost"].run_dir)):
        _, old = read_run(Path(run), arm.CONFIG)
        judge_cfgs[name] = arm.train(replace(old, data=str(data), out=str(round_dir / f"{name}_model")))
    return {"reward_run": str(judge_cfgs["reward"]), "cost_run": str(judge_cfgs["cost"]),
            "pairs_file": str(round_dir / "train_pairs.jsonl")}


def _hh_rows(prepared: Path):
    """The prepared train split back in HH-RLHF form (chosen / rejected dialogues), one JSON line each."""
    for pair, _ in load_split(prepared, "train"):
        dialogue = "\n\n" + context_text(pair.context)
        yield json.dumps({"chosen": f"{dialogue}\n\nAssistant: {pair.chosen}",
                          "rejected": f"{dialogue}\n\nAssistant: {pair.rejected}"})


def _save_state(run_dir: Path, model, optimizer, state: dict):
    import os

    import torch
    from peft import get_peft_model_state_dict

    work = run_dir / ".checkpoint.tmp"
    work.mkdir(parents=True, exist_ok=True)
    torch.save(get_peft_model_state_dict(model), work / "adapter.pt")
    torch.save(optimizer.state_dict(), work / "optimizer.pt")
    write_json_atomic(work / "state.json", state)
    target = run_dir / CHECKPOINTS
    if target.exists():
        import shutil

        shutil.rmtree(target)
    os.replace(work, target)
    write_jsonl_atomic(run_dir / "train_log.jsonl", state["log"])


def _load_state(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINTS / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _finish(run_dir: Path, model, tokenizer, state: dict, cfg: SafeRLHFConfig):
    import os
    import shutil

    work = run_dir / f".{MODEL_DIR}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    merged = model.merge_and_unload()
    merged.save_pretrained(work, safe_serialization=True)
    tokenizer.save_pretrained(work)
    calibrations = [{k: v for k, v in c.items() if k != "moments"} for c in state["calibrations"]]
    (work / DONE).write_text(json.dumps({"steps": state["step"], "rounds": cfg.rounds, "final_lambda": state["lambda"],
                                         "cost_threshold": calibrations[-1]["cost_threshold"],
                                         "calibrations": calibrations,
                                         "reward_run": state["reward_run"], "cost_run": state["cost_run"],
                                         "precision": "float32"}, indent=2))
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
    os.replace(work, run_dir / MODEL_DIR)
    write_jsonl_atomic(run_dir / "train_log.jsonl", state["log"])
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # a finished run is never resumed


CONFIG = SafeRLHFConfig
