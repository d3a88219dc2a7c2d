"""Training speed of the generative arms against this machine's compute bound, and against trl's defaults.

    python benchmarks/bench_policies.py [--pairs N] [--rl-steps 2]

On the same SmolLM2-135M-Instruct and the same first N Clean training pairs (default: as many as the arm's
shipped profile trains on, 128 for SFT and 32 for DPO), each run in a fresh process:

- the machine's matmul rate: fp32 torch.mm at the policy's own shapes (q/k/v/o, MLP, LM head) for 1,024
  tokens; the best shape's GFLOP/s is the compute bound (a conservative one: no run can beat it), measured before
  SFT, before DPO, before the RL step and after it, the highest of the four taken;
- sft, dpo: the arm as the offline profile ships it (LoRA, learning rate, lengths); then its settings undone
  one at a time, each variant keeping the earlier ones undone: the fused (sdpa) attention instead of the eager
  one on a CPU (safealign_sdpa: the arms before 2026-12-05); and 5% LoRA dropout (safealign_lora_dropout); and
  trl's LM head over every position instead of the response's (safealign_trl_head: the arms before b4d84b2);
  then the same rows through trl's SFTTrainer / DPOTrainer with their defaults (full fine-tuning, trl's
  learning rate, max_length 1024, no LoRA) but one epoch, the same batch size and seed;
- the Safe RLHF step (sampling B x K responses, reward and cost scoring, policy and reference passes, the
  update), as the offline profile ships it.

FLOPs required are counted from the model's shapes for the non-padding tokens actually processed (matmuls:
2 per multiply-add; attention over the causal context; the LM head only at the positions whose distribution is
used: the response tokens the loss scores, a prompt's last position and each sampled token when sampling),
forward = F; LoRA training = 2F (gradients of the activations, not of the frozen weights), full fine-tuning =
3F, a reference pass = F, sampling = prefill + one decoding step per new token (a recomputation, as under
gradient checkpointing, is not required work and is not counted); the RL step adds the two MiniLM judges'
forward passes. % of bound = FLOPs required / seconds / bound. Quality at equal data: SFT's held-out NLL per
response token on 32 Clean test pairs' chosen responses; DPO's held-out preference accuracy (implicit reward)
on the same 32 pairs.
Results go to benchmarks/results/policies.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "policies.json"
# The shipped SFT/DPO settings undone one at a time: the fused attention (not the eager one); then also 5% LoRA
# dropout; then also trl's LM head over every position.
ABLATIONS = ("safealign_sdpa", "safealign_lora_dropout", "safealign_trl_head")
HELD_OUT = 32


def in_fresh_process(module: str, function: str, *args, env: dict | None = None):
    """module.function(*args) of a benchmark in this folder, run in a fresh Python process (its own memory peak,
    no warm caches); returns its JSON result."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {module}; "
            f"print('RESULT=' + json.dumps({module}.{function}(*{list(args)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{function}{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT="))[len("RESULT="):])


def run_child(*args) -> dict:
    return in_fresh_process("bench_policies", "child", *args)


def child(kind: str, variant: str, pairs: int, data: str, rl_steps: int) -> dict:
    from safealign.arms.common import quiet_transformers

    quiet_transformers()
    start = time.perf_counter()
    if kind == "matmul":
        result = matmul_rate()
    elif kind == "rl":
        result = bench_rl(data, rl_steps)
    else:
        result = bench_policy(kind, variant, pairs, data)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return result


# --------------------------------------------------------------------------- FLOPs


def shapes():
    from transformers import AutoConfig

    from safealign.models import resolve

    c = AutoConfig.from_pretrained(resolve("smollm2-135m-instruct"))
    head_dim = c.hidden_size // c.num_attention_heads
    return {"layers": c.num_hidden_layers, "d": c.hidden_size, "ffn": c.intermediate_size, "vocab": c.vocab_size,
            "q": c.num_attention_heads * head_dim, "kv": c.num_key_value_heads * head_dim}


def forward_flops(lengths: list[int], s: dict, lora_r: int = 0, scored: int | None = None) -> float:
    """Forward FLOPs of whole sequences of these (non-padding) lengths: matmuls, causal attention, and the LM head
    on the `scored` positions only (default: every position), the ones whose next-token distribution is used."""
    d, L = s["d"], s["layers"]
    per_token = 2 * L * (d * s["q"] + 2 * d * s["kv"] + s["q"] * d + 3 * d * s["ffn"])
    per_token += 2 * L * lora_r * 4 * (2 * d) if lora_r else 0  # LoRA A and B on q/k/v/o
    attention = sum(2 * 2 * L * s["q"] * t * (t + 1) / 2 for t in lengths)  # QK^T and AV over the causal context
    head = 2 * d * s["vocab"] * (sum(lengths) if scored is None else scored)
    return per_token * sum(lengths) + attention + head


def matmul_rate() -> dict:
    """torch.mm's GFLOP/s at the policy's shapes for 1,024 tokens, in float32 and in bfloat16; each bound is its
    best shape's rate. An arm's share is taken of the bound of the arithmetic it ran in (`precision: auto`
    trains with bfloat16 autocast where the CPU multiplies bfloat16 natively)."""
    import torch

    s = shapes()
    result = {"threads": torch.get_num_threads()}
    for dtype, suffix in ((torch.float32, ""), (torch.bfloat16, "_bf16")):
        rates = {}
        for name, (k, n) in {"qkvo": (s["d"], s["d"]), "mlp": (s["d"], s["ffn"]),
                             "lm_head": (s["d"], s["vocab"])}.items():
            a, b = torch.randn(1024, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            torch.mm(a, b)
            reps, start = 0, time.perf_counter()
            while time.perf_counter() - start < 2.0:
                torch.mm(a, b)
                reps += 1
            rates[name] = round(2 * 1024 * k * n * reps / (time.perf_counter() - start) / 1e9, 1)
        result |= {f"gflops_by_shape{suffix}": rates, f"bound_gflops{suffix}": max(rates.values())}
    return result


# --------------------------------------------------------------------------- runs


def _profile(arm: str):
    from safealign.audit import load_audit_config

    return getattr(load_audit_config("offline"), arm)


def _rows(data: str, split: str, n: int):
    from safealign.arms.common import load_split

    return load_split(Path(data), split, part="clean")[:n]


def _token_lengths(tokenizer, rows, cfg, with_rejected: bool) -> tuple[list[int], int]:
    """The training sequences' token lengths (prompt + response, cut at max_length) and how many of their
    positions the loss scores (the response's tokens, end of turn included)."""
    from safealign.generate import response_text, trim_context

    lengths, scored = [], 0
    for pair, _ in rows:
        prompt = trim_context(tokenizer, pair.context, cfg.max_prompt_tokens)
        prompt_length = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                          return_dict=True)["input_ids"])
        for response in ((pair.chosen, pair.rejected) if with_rejected else (pair.chosen,)):
            text = response_text(tokenizer, response, cfg.max_response_tokens)
            ids = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": text}], tokenize=True,
                                                return_dict=True)["input_ids"]
            lengths.append(min(len(ids), cfg.max_length))
            scored += max(lengths[-1] - prompt_length, 0)
    return lengths, scored


def _held_out_nll(folder: str, data: str, cfg) -> float:
    """Mean NLL per response token of the chosen responses of HELD_OUT Clean test pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign.eval.implicit_reward import response_logprobs
    from safealign.generate import response_text, trim_context

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    rows = _rows(data, "test", HELD_OUT)
    prompts = [trim_context(tokenizer, p.context, cfg.max_prompt_tokens) for p, _ in rows]
    texts = [response_text(tokenizer, p.chosen, cfg.max_response_tokens) for p, _ in rows]
    logps = response_logprobs(model, tokenizer, prompts, texts)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)  # + end of turn
    return round(-sum(logps) / tokens, 4)


def _held_out_preference(folder: str, reference: str, data: str, cfg) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from safealign.eval.implicit_reward import response_logprobs
    from safealign.eval.stats import rate
    from safealign.generate import response_text, trim_context

    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = _rows(data, "test", HELD_OUT)
    prompts = [trim_context(tokenizer, p.context, cfg.max_prompt_tokens) for p, _ in rows]
    texts = [response_text(tokenizer, p.chosen, cfg.max_response_tokens) for p, _ in rows] + \
            [response_text(tokenizer, p.rejected, cfg.max_response_tokens) for p, _ in rows]
    logps = {}
    for role, path in (("policy", folder), ("reference", reference)):
        logps[role] = response_logprobs(AutoModelForCausalLM.from_pretrained(path), tokenizer, prompts + prompts,
                                        texts)
    import torch

    from safealign import losses

    n = len(rows)
    policy, reference = torch.tensor(logps["policy"]), torch.tensor(logps["reference"])
    margins = losses.dpo_margin(policy[:n], policy[n:], reference[:n], reference[n:], cfg.beta)
    return rate(int((margins > 0).sum()), n).to_dict()


def bench_policy(kind: str, variant: str, pairs: int, data: str) -> dict:
    """kind sft or dpo: the shipped arm (variant safealign) or trl's trainer with its defaults (trl_defaults)."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    from safealign.arms import arm_module
    from safealign.arms.common import MODEL_DIR
    from safealign.models import resolve, uses_bf16

    arm, dpo = arm_module(kind), kind == "dpo"
    cfg = replace(_profile(kind), data=data, max_train_pairs=pairs, model="smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(resolve(cfg.model))
    lengths, scored = _token_lengths(tokenizer, _rows(data, "train", pairs), cfg, with_rejected=dpo)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-{variant}-"))
    if variant.startswith("safealign"):
        undone = ABLATIONS[: ABLATIONS.index(variant) + 1] if variant in ABLATIONS else ()
        if "safealign_sdpa" in undone:  # what the shipped arm changed, put back one at a time
            from safealign.arms import policy

            policy.training_attention = lambda: {}
        if "safealign_lora_dropout" in undone:
            cfg = replace(cfg, lora_dropout=0.05)
        if "safealign_trl_head" in undone:
            arm.project_response_tokens_only = lambda trainer: False
        run = arm.train(replace(cfg, out=str(out)))
        seconds = json.loads((run / MODEL_DIR / "safealign-complete.json").read_text())["train_seconds"]
        folder = str(run / MODEL_DIR)
        multiplier = 2 + dpo  # LoRA: forward + activation gradients (+ DPO's reference pass, adapter off)
    else:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

        config, trainer_class = (DPOConfig, DPOTrainer) if dpo else (SFTConfig, SFTTrainer)
        rows = (arm.dpo_rows if dpo else arm.sft_rows)(tokenizer, _rows(data, "train", pairs), cfg)
        args = config(output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=cfg.batch_size,
                      report_to="none", seed=cfg.seed, use_cpu=True, save_strategy="no")
        trainer = trainer_class(model=AutoModelForCausalLM.from_pretrained(resolve(cfg.model)), args=args,
                                train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        seconds = trainer.train().metrics["train_runtime"]
        trainer.save_model(str(out / "model"))
        tokenizer.save_pretrained(str(out / "model"))
        folder = str(out / "model")
        # full fine-tuning (+ DPO's reference model); gradient checkpointing's recomputation is not required work
        multiplier = 3 + dpo
        lengths = [min(length, args.max_length or length) for length in lengths]
    flops = multiplier * forward_flops(lengths, shapes(), cfg.lora_r if variant.startswith("safealign") else 0,
                                       scored)
    quality = ({"held_out_preference_accuracy": _held_out_preference(folder, resolve(cfg.model), data, cfg)} if dpo
               else {"held_out_nll_per_token": _held_out_nll(folder, data, cfg)})
    precision = "bfloat16" if variant.startswith("safealign") and uses_bf16(cfg.precision) else "float32"
    return {"train_seconds": round(seconds, 2), "precision": precision, "pairs": pairs, "batch_size": cfg.batch_size,
            "tokens": sum(lengths),
            "tokens_per_s": round(sum(lengths) / seconds, 1), "pairs_per_s": round(pairs / seconds, 3),
            "gflop_required": round(flops / 1e9, 1), "achieved_gflops": round(flops / seconds / 1e9, 1)} | quality


def bench_rl(data: str, rl_steps: int) -> dict:
    """rl_step timed on the offline profile's B x K, with the audit's reward and cost runs given in `data`."""
    import math
    import random
    from dataclasses import replace

    import torch
    from peft import get_peft_model

    from safealign.arms import safe_rlhf
    from safealign.arms.policy import load_policy, lora_config
    from safealign.generate import trim_context

    prepared, judges_root = data.split("|")
    cfg = replace(_profile("safe_rlhf"), data=prepared, model="smollm2-135m-instruct",
                  reward_run=f"{judges_root}/reward_model", cost_run=f"{judges_root}/cost_model")
    model, tokenizer = load_policy(cfg.model, cfg)
    model = get_peft_model(model, lora_config(cfg)).eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    judges = safe_rlhf._judges({"reward_run": cfg.reward_run, "cost_run": cfg.cost_run})
    pool = [p.context for p, _ in _rows(prepared, "train", 400)]
    moments = {"reward": safe_rlhf.NO_MOMENTS, "cost": safe_rlhf.NO_MOMENTS}
    state = {"lambda": cfg.lambda_init, "log_lambda": math.log(cfg.lambda_init), "cost_window": []}
    s, steps = shapes(), []
    for step in range(rl_steps + 1):  # the first step warms up and is not counted
        rng = random.Random(step)
        prompts = [trim_context(tokenizer, c, cfg.max_prompt_tokens) for c in rng.sample(pool, cfg.prompts_per_step)]
        start = time.perf_counter()
        record, moments = safe_rlhf.rl_step(model, tokenizer, optimizer, judges, prompts, state, moments, 0.0, cfg)
        seconds = time.perf_counter() - start
        prompt_lengths = [len(tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                            return_dict=True)["input_ids"])
                          for m in prompts for _ in range(cfg.samples_per_prompt)]
        new = record["response_tokens"] / len(prompt_lengths)
        full = [p + new for p in prompt_lengths]
        # the prompt's prefill needs the LM head at its last position only; every sampled token needs it once
        sampling = forward_flops(prompt_lengths, s, cfg.lora_r, scored=len(prompt_lengths)) + sum(
            forward_flops([p + t + 1], s, cfg.lora_r) - forward_flops([p + t], s, cfg.lora_r)
            for p in prompt_lengths for t in range(int(new)))
        scored = record["response_tokens"]  # log π and log π_ref of the response tokens
        update = (2 * forward_flops(full, s, cfg.lora_r, scored)  # policy forward + activation gradients
                  + forward_flops(full, s, scored=scored))  # reference forward
        judge = 2 * 2 * 22.7e6 * 64 * len(full)  # reward and cost MiniLM forward, <= 64 tokens each
        steps.append({"seconds": seconds, "flops": sampling + update + judge, "sampling_flops": sampling,
                      "update_flops": update, "samples": len(full), "response_tokens": record["response_tokens"]})
    counted = steps[1:]
    seconds = sum(r["seconds"] for r in counted)
    flops = sum(r["flops"] for r in counted)
    return {"steps": len(counted), "precision": "float32", "seconds_per_step": round(seconds / len(counted), 2),
            "samples_per_s": round(sum(r["samples"] for r in counted) / seconds, 3),
            "gflop_required": round(flops / 1e9, 1), "achieved_gflops": round(flops / seconds / 1e9, 1),
            "sampling_share_of_flops": round(sum(r["sampling_flops"] for r in counted) / flops, 3)}


def bound_of(bound: dict, result: dict) -> float:
    """The matmul bound of the arithmetic a run trained in."""
    return bound["bound_gflops_bf16"] if result.get("precision") == "bfloat16" else bound["bound_gflops"]


def main():
    from safealign.models import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=None, help="training pairs (default: the arm's profile's)")
    parser.add_argument("--rl-steps", type=int, default=2)
    parser.add_argument("--audit", default="runs/audit", help="a finished audit: its data and reward/cost runs")
    args = parser.parse_args()
    data = str(Path(args.audit) / "data")
    # The bound is measured before each arm and after the last, and the highest is taken: on a machine with AMX
    # one measurement varies by a quarter from the next (bench_compile.py), and a bound must be one no run passes.
    matmul_runs = [run_child("matmul", "-", 0, data, 0)]
    arms = {}
    for kind in ("sft", "dpo"):
        arms[kind] = {}
        pairs = args.pairs or _profile(kind).max_train_pairs
        for variant in ("safealign", *ABLATIONS, "trl_defaults"):
            arms[kind][variant] = run_child(kind, variant, pairs, data, 0)
            print(kind, variant, json.dumps(arms[kind][variant]), flush=True)
        matmul_runs.append(run_child("matmul", "-", 0, data, 0))
    arms["safe_rlhf_step"] = run_child("rl", "safealign", 0, f"{data}|{args.audit}", args.rl_steps)
    print("rl", json.dumps(arms["safe_rlhf_step"]), flush=True)
    matmul_runs.append(run_child("matmul", "-", 0, data, 0))
    bound = {key: max(m[key] for m in matmul_runs) for key in ("bound_gflops", "bound_gflops_bf16")}
    results = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), "matmul_runs": matmul_runs,
               **bound, "arms": arms}
    for kind in ("sft", "dpo"):
        for r in arms[kind].values():
            r["percent_of_bound"] = round(100 * r["achieved_gflops"] / bound_of(bound, r), 1)
        arms[kind]["speedup_pairs_per_s"] = round(arms[kind]["safealign"]["pairs_per_s"]
                                                  / arms[kind]["trl_defaults"]["pairs_per_s"], 2)
    rl = arms["safe_rlhf_step"]
    rl["percent_of_bound"] = round(100 * rl["achieved_gflops"] / bound_of(bound, rl), 1)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
