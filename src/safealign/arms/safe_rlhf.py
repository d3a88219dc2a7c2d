"""Safe RLHF: maximise reward − λ·cost, with λ >= 0 moved by dual ascent to hold expected cost under d.

Per step, for B red-team prompts (the train split's harmless-base contexts), K responses are sampled from
the policy (LoRA on the base) and scored by the run's reward model R and cost model C:

    s_i   = R(x, y_i) − λ · C(x, y_i)
    A_i   = s_i − mean_{j≠i} s_j                              (leave-one-out baseline among the K samples)
    loss  = −mean_i A_i · log π(y_i|x) + β_KL · mean_i Σ_t k3(y_i,t),  k3 = e^{log π_ref − log π} − (log π_ref − log π) − 1
    λ    ← max(0, λ + η_λ · (mean_i C(x, y_i) − d))            (dual ascent)

By default d is the cost at which the cost model flags a response unsafe (its threshold picked on dev):
a cost model trained one epoch on ~1,800 pairs puts nearly every cost below 0, so d = 0 would leave the
constraint idle and λ at 0 — Safe RLHF would silently become reward-only RLHF.

π_ref is the base (the adapters switched off). λ, mean reward, mean cost and the KL estimate are logged
every step to train_log.jsonl. With `fixed_lambda` set (0 for reward-only RLHF) λ never moves: that run,
beside this one, is the comparison Safe RLHF is about.

Why not trl: trl 1.16 has no PPO trainer, and its RLOO/GRPO trainers weight several reward functions with
fixed weights, while here the weight of the cost changes every step with λ. The critic-free leave-one-out
estimator (as in RLOO) avoids a value model, which a 2-core machine cannot afford.

Rounds (`rounds` > 1): after each round's steps, the policy answers red-team prompts twice, the judges
relabel each pair (chosen = the lower cost, ties broken by reward), the pairs are added to the training
data, the reward and cost models are retrained on it, and the next round optimises against them.
Each step checkpoints the adapters, the optimiser, λ and the step; an interrupted run resumes there.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from safealign.arms.common import CHECKPOINTS, DONE, MODEL_DIR, is_trained, labelled_data, load_split, read_run, start_run
from safealign.arms.policy import PolicyConfig, load_policy, lora_config, trim_context
from safealign.errors import SafeAlignError
from safealign.io import write_json_atomic, write_jsonl_atomic
from safealign.models import inference_device

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
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the adapters"})
    kl_coef: float = field(default=0.05, metadata={"help": "β_KL of the KL penalty to the base"})
    cost_threshold: float | None = field(default=None, metadata={
        "help": "d: the expected cost to hold; None: the cost at which the cost model flags a response unsafe "
                "(its threshold picked on dev, from the cost run's metrics.json)"})
    lambda_init: float = field(default=1.0, metadata={"help": "initial λ"})
    lambda_lr: float = field(default=0.5, metadata={"help": "η_λ: dual ascent step"})
    fixed_lambda: float | None = field(default=None, metadata={"help": "hold λ here (0: reward-only RLHF)"})
    relabel_prompts: int = field(default=32, metadata={"help": "red-team prompts answered twice per round to relabel"})
    max_train_pairs: int | None = field(default=None, metadata={"help": "red-team prompt pool (None: every train context)"})
    save_steps: int = field(default=1, metadata={"help": "checkpoint every this many steps"})

    def __post_init__(self):
        super().__post_init__()
        if self.samples_per_prompt < 2:
            raise SafeAlignError("samples_per_prompt must be >= 2 (the leave-one-out baseline needs a second sample)")
        if self.steps < 1 or self.rounds < 1 or self.lambda_init < 0 or self.lambda_lr < 0:
            raise SafeAlignError("steps and rounds must be >= 1; lambda_init and lambda_lr >= 0")
        if self.fixed_lambda is not None and self.fixed_lambda < 0:
            raise SafeAlignError("fixed_lambda must be >= 0")


def lagrange_update(lam: float, mean_cost: float, threshold: float, lr: float) -> float:
    """Dual ascent on λ for the constraint E[C] <= d: λ grows while the cost is above d, never below 0."""
    return max(0.0, lam + lr * (mean_cost - threshold))


def leave_one_out(scores):
    """A_i = s_i − mean of the other K−1 scores of the same prompt. scores: (B, K) -> (B, K)."""
    k = scores.shape[-1]
    return scores - (scores.sum(-1, keepdim=True) - scores) / (k - 1)


# --------------------------------------------------------------------------- training


def train(cfg: SafeRLHFConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir
    from safealign.arms.common import quiet_transformers

    quiet_transformers()
    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    pool = [pair.context for pair, _ in load_split(prepared, "train")[: cfg.max_train_pairs]]
    reward_run, cost_run = Path(cfg.reward_run), Path(cfg.cost_run)
    for judge in (reward_run, cost_run):
        if not is_trained(judge):
            raise SafeAlignError(f"{judge}: no finished judge run there (train reward_model and cost_model first)")
    state = _load_state(run_dir) or {"round": 0, "step": 0, "lambda": _lambda0(cfg), "log": [],
                                     "reward_run": str(reward_run), "cost_run": str(cost_run),
                                     "cost_threshold": cost_threshold(cfg)}
    model, tokenizer = load_policy(cfg.model, cfg)
    from peft import get_peft_model, set_peft_model_state_dict
    import torch

    torch.manual_seed(cfg.seed)
    if getattr(model, "hf_quantizer", None) is None:  # a 4-bit policy is placed by its loader
        model = model.to(inference_device())
    model = get_peft_model(model, lora_config(cfg))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    if state["step"] or state["round"]:
        set_peft_model_state_dict(model, torch.load(run_dir / CHECKPOINTS / "adapter.pt", map_location="cpu", weights_only=True))
        optimizer.load_state_dict(torch.load(run_dir / CHECKPOINTS / "optimizer.pt", map_location="cpu", weights_only=True))
    while state["round"] < cfg.rounds:
        judges = _judges(state)
        while state["step"] < cfg.steps:
            rng = random.Random(f"{cfg.seed}-{state['round']}-{state['step']}")
            torch.manual_seed(rng.randrange(2**31))  # sampling and dropout per step: a resumed run repeats them
            prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens) for c in rng.sample(pool, cfg.prompts_per_step)]
            record = rl_step(model, tokenizer, optimizer, judges, prompts, state["lambda"], cfg)
            if cfg.fixed_lambda is None:
                state["lambda"] = lagrange_update(state["lambda"], record["mean_cost"], state["cost_threshold"],
                                                  cfg.lambda_lr)
            state["step"] += 1
            state["log"].append({"round": state["round"], "step": state["step"], "lambda": state["lambda"]} | record)
            if state["step"] % cfg.save_steps == 0 or state["step"] == cfg.steps:
                _save_state(run_dir, model, optimizer, state)
        if state["round"] + 1 < cfg.rounds:
            state |= relabel_and_retrain(model, tokenizer, judges, pool, prepared, run_dir, state["round"], cfg)
        state["round"] += 1
        state["step"] = 0 if state["round"] < cfg.rounds else state["step"]
        _save_state(run_dir, model, optimizer, state)
    _finish(run_dir, model, tokenizer, state, cfg)
    return run_dir


def cost_threshold(cfg: SafeRLHFConfig) -> float:
    """d: as configured, or the cost model's own unsafe threshold (picked on dev by `safealign eval`)."""
    if cfg.cost_threshold is not None:
        return cfg.cost_threshold
    metrics = Path(cfg.cost_run) / "metrics.json"
    if not metrics.is_file():
        raise SafeAlignError(f"{cfg.cost_run}: cost_threshold=null reads the cost model's dev threshold from its "
                             "metrics.json; run `safealign eval` on it first, or set cost_threshold")
    return json.loads(metrics.read_text())["safety_f1"]["threshold"]


def _lambda0(cfg: SafeRLHFConfig) -> float:
    return cfg.fixed_lambda if cfg.fixed_lambda is not None else cfg.lambda_init


def _judges(state: dict) -> dict:
    from safealign.eval.judges import RunJudge

    return {"reward": RunJudge(state["reward_run"]), "cost": RunJudge(state["cost_run"])}


def rl_step(model, tokenizer, optimizer, judges, prompts: list[list[dict]], lam: float, cfg: SafeRLHFConfig) -> dict:
    import torch

    from safealign.data.prompts import Prompt

    k = cfg.samples_per_prompt
    batch = sample(model, tokenizer, prompts, k, cfg)  # B*K sequences
    as_prompts = [Prompt(f"rl-{i}", "red_team", tuple(m), "train") for m in prompts for i in range(k)]
    rewards = torch.tensor(judges["reward"].score(as_prompts, batch["texts"])).view(-1, k)  # (B, K)
    costs = torch.tensor(judges["cost"].score(as_prompts, batch["texts"])).view(-1, k)  # (B, K)
    advantages = leave_one_out(rewards - lam * costs).view(-1).to(model.device)  # (B*K,)
    model.train()
    logp = sequence_logprobs(model, batch)  # (B*K, T) log π of each response token, 0 on padding
    with torch.no_grad(), model.disable_adapter():
        ref_logp = sequence_logprobs(model, batch)
    log_ratio = ref_logp - logp  # k3 estimator of KL(π || π_ref) per token: e^x − x − 1 >= 0
    kl = ((log_ratio.exp() - log_ratio - 1) * batch["response_mask"]).sum(-1)  # (B*K,)
    loss = -(advantages * (logp * batch["response_mask"]).sum(-1)).mean() + cfg.kl_coef * kl.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": round(loss.item(), 5), "mean_reward": round(rewards.mean().item(), 5),
            "mean_cost": round(costs.mean().item(), 5), "unsafe_share": round((costs > 0).float().mean().item(), 4),
            "kl": round(kl.mean().item(), 5)}


def sample(model, tokenizer, prompts: list[list[dict]], k: int, cfg: SafeRLHFConfig) -> dict:
    """K sampled responses per prompt: left-padded prompt+response ids and a mask over response tokens."""
    import torch

    from safealign.eval.generate import _left_pad

    encoded = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
               for m in prompts for _ in range(k)]
    ids, mask = _left_pad(encoded, tokenizer.pad_token_id)  # (B*K, P)
    ids, mask = ids.to(model.device), mask.to(model.device)
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=cfg.temperature,
                             top_p=1.0, max_new_tokens=cfg.max_response_tokens, pad_token_id=tokenizer.pad_token_id)
    response = out[:, ids.shape[1]:]  # (B*K, R)
    eos = tokenizer.eos_token_id
    alive = torch.ones_like(response)
    if eos is not None:  # tokens after the first eos are padding; the eos itself is kept
        after_eos = (response == eos).long().cumsum(-1) - (response == eos).long()
        alive = (after_eos == 0).long()
    texts = [tokenizer.decode(r[a.bool()], skip_special_tokens=True).strip() for r, a in zip(response, alive)]
    return {"input_ids": out, "attention_mask": torch.cat([mask, alive], dim=1),
            "response_mask": alive.float(), "prompt_length": ids.shape[1], "texts": texts}


def sequence_logprobs(model, batch: dict):
    """log π(token) for every response token. -> (N, R)"""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (N, T, V)
    start = batch["prompt_length"]
    logits = logits[:, start - 1: -1].float()  # predictions of the response tokens
    targets = batch["input_ids"][:, start:]
    return torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


# --------------------------------------------------------------------------- rounds, checkpoints


def relabel_and_retrain(model, tokenizer, judges, pool, prepared: Path, run_dir: Path, round_index: int,
                        cfg: SafeRLHFConfig) -> dict:
    """Answer red-team prompts twice, relabel the pairs with the judges, retrain the judges on old + new pairs."""
    from safealign.arms import cost_model, reward_model
    from safealign.data.hh_rlhf import context_text
    from safealign.data.prompts import Prompt

    round_dir = run_dir / f"round_{round_index + 1}"
    rng = random.Random(f"{cfg.seed}-relabel-{round_index}")
    prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens) for c in rng.sample(pool, min(cfg.relabel_prompts, len(pool)))]
    texts = sample(model, tokenizer, prompts, 2, cfg)["texts"]
    as_prompts = [Prompt(f"relabel-{i}", "red_team", tuple(m), "train") for i, m in enumerate(prompts) for _ in (0, 1)]
    costs, rewards = judges["cost"].score(as_prompts, texts), judges["reward"].score(as_prompts, texts)
    rows = []
    for i, messages in enumerate(prompts):
        a, b = 2 * i, 2 * i + 1
        if not texts[a] or not texts[b] or texts[a] == texts[b]:
            continue
        better, worse = (a, b) if (costs[a], -rewards[a]) < (costs[b], -rewards[b]) else (b, a)
        dialogue = "\n\n" + context_text(messages)
        rows.append({"chosen": f"{dialogue}\n\nAssistant: {texts[better]}", "rejected": f"{dialogue}\n\nAssistant: {texts[worse]}"})
    original = [json.loads(l) for l in _hh_rows(prepared)]
    write_jsonl_atomic(round_dir / "relabelled_pairs.jsonl", rows)
    write_jsonl_atomic(round_dir / "train_pairs.jsonl", original + rows)
    data = labelled_data(str(round_dir / "train_pairs.jsonl"), round_dir, cfg.seed)
    judge_cfgs = {}
    for name, arm, run in (("reward", reward_model, judges["reward"].run_dir), ("cost", cost_model, judges["cost"].run_dir)):
        _, old = read_run(Path(run), arm.CONFIG)
        judge_cfgs[name] = arm.train(replace(old, data=str(data), out=str(round_dir / f"{name}_model")))
    return {"reward_run": str(judge_cfgs["reward"]), "cost_run": str(judge_cfgs["cost"])}


def _hh_rows(prepared: Path):
    """The prepared train split back in HH-RLHF form (chosen / rejected dialogues), one JSON line each."""
    from safealign.data.hh_rlhf import context_text

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
    (work / DONE).write_text(json.dumps({"steps": state["step"], "rounds": cfg.rounds, "final_lambda": state["lambda"],
                                         "cost_threshold": state["cost_threshold"],
                                         "reward_run": state["reward_run"], "cost_run": state["cost_run"]}, indent=2))
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
    os.replace(work, run_dir / MODEL_DIR)
    write_jsonl_atomic(run_dir / "train_log.jsonl", state["log"])
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # a finished run is never resumed


CONFIG = SafeRLHFConfig
