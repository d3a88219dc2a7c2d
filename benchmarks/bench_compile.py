"""Would compiling the policy (torch.compile) bring SFT's step to the compute bound, and would it pay in the audit?

    python benchmarks/bench_compile.py [--steps 6] [--length 112] [--scored 48]

An SFT step as the offline profile trains it, at one fixed shape: SmolLM2-135M-Instruct, LoRA as the arm ships
it (configs/arms/sft.yaml), eager attention on a CPU, bfloat16 autocast, a batch of 8 rows of `length` tokens
with the loss (and the LM head) on the last `scored` positions of each (a response, as the shipped arm's LM head
reads only the response), forward and backward, no optimiser. Run eagerly and under torch.compile (inductor, its
default mode), each in a fresh process with an empty inductor cache. The first compiled step includes the
compilation; the step time is the median of the later ones. One fixed shape is compile's best case: the arm's
batches vary in length, and each new length can compile again (an ad hoc run of the whole SFT arm under the
Trainer's `torch_compile=True` took minutes, not seconds, for the audit's 16 steps).

FLOPs of a step are bench_policies.forward_flops × 2 (LoRA: activation gradients, not the frozen weights');
% of bound is against the bfloat16 matmul bound (bench_policies.matmul_rate), measured before each run and after
the last, the highest of the four (one measurement here varies by a quarter from the next).
Break-even steps = compile seconds / (eager step − compiled step): how many steps of one shape the compilation
needs to pay for itself. Then the eager step's own matrix products alone (`matmul_replay`: every mm/bmm the step
dispatches, forward and backward, replayed with nothing between them on tensors of the same shapes, strides and
dtypes): the share of the bound no step at this shape can pass while its matrix products run on these kernels.
Results go to benchmarks/results/compile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_policies  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "compile.json"
BATCH = 8  # the offline profile's SFT batch size (configs/arms/sft.yaml)


def sft_step(length: int, scored: int, compiled: bool = False):
    """One SFT step (forward + backward, no optimiser) at one shape, as a function of no arguments."""
    import torch
    from peft import get_peft_model

    from safealign.arms.common import quiet_transformers
    from safealign.arms.policy import load_policy, lora_config
    from safealign.audit import load_audit_config

    quiet_transformers()
    cfg = load_audit_config("offline").sft
    model, _ = load_policy("smollm2-135m-instruct", cfg)
    model = get_peft_model(model, lora_config(cfg))
    model.train()
    run = torch.compile(model) if compiled else model
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (BATCH, length), generator=generator)
    mask = torch.ones_like(ids)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = run(input_ids=ids, attention_mask=mask, logits_to_keep=scored + 1).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 ids[:, -scored:].reshape(-1))
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def step_times(mode: str, steps: int, length: int, scored: int) -> list[float]:
    """Seconds of each of `steps` SFT steps (forward + backward) at one shape, eager or compiled."""
    step = sft_step(length, scored, compiled=mode == "compiled")
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


MATMULS = ("mm", "bmm", "addmm", "baddbmm")
Layout = namedtuple("Layout", "shape stride dtype")  # a recorded matrix product's operand


def matmul_replay(steps: int, length: int, scored: int) -> dict:
    """The eager step's own matrix products, replayed alone: every mm/bmm/addmm the step dispatches (forward and
    backward, after autocast) is recorded with its shapes, strides and dtype, then the whole list is run again on
    fresh tensors of those layouts, `steps` times. Its median is the step's time with everything but the matrix
    products removed: no eager or compiled step at this shape, with these kernels, can be faster."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    step = sft_step(length, scored)
    step()  # warm-up

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in MATMULS:
                self.calls.append((func, [Layout(a.shape, a.stride(), a.dtype) if isinstance(a, torch.Tensor)
                                          else a for a in args]))
            return func(*args, **(kwargs or {}))

    with Record() as record:
        step()

    calls = [(func, [torch.empty_strided(a.shape, a.stride, dtype=a.dtype).normal_() if isinstance(a, Layout) else a
                     for a in args]) for func, args in record.calls]
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        for func, args in calls:
            func(*args)
        seconds.append(time.perf_counter() - start)
    dtypes = sorted({str(a.dtype).removeprefix("torch.") for _, args in record.calls for a in args
                     if isinstance(a, Layout)})
    return {"calls": len(calls), "dtypes": dtypes, "seconds": seconds}


def run_child(*args) -> list[float]:
    """step_times in a fresh process, with its own empty inductor cache (a machine's first audit has none)."""
    with tempfile.TemporaryDirectory() as cache:
        return bench_policies.in_fresh_process("bench_compile", "step_times", *args,
                                               env=os.environ | {"TORCHINDUCTOR_CACHE_DIR": cache})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per mode (the first is a warm-up)")
    parser.add_argument("--length", type=int, default=112, help="tokens per row")
    parser.add_argument("--scored", type=int, default=48, help="response tokens per row (the loss's positions)")
    args = parser.parse_args()
    from safealign.audit import load_audit_config
    from safealign.models import machine

    # The bound is measured before each run and after the last, and the highest is taken: on this machine one
    # measurement varies by a quarter from the next, and a bound must be one no step can pass.
    bounds = [bench_policies.matmul_rate()["bound_gflops_bf16"]]
    runs = {}
    for mode in ("eager", "compiled", "matmuls_alone"):
        runs[mode] = (bench_policies.in_fresh_process("bench_compile", "matmul_replay", args.steps, args.length,
                                                      args.scored) if mode == "matmuls_alone"
                      else {"seconds": run_child(mode, args.steps, args.length, args.scored)})
        bounds.append(bench_policies.matmul_rate()["bound_gflops_bf16"])
    bound = max(bounds)
    flops = 2 * bench_policies.forward_flops([args.length] * BATCH, bench_policies.shapes(),
                                             load_audit_config("offline").sft.lora_r, scored=BATCH * args.scored)
    result = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       cwd=Path(__file__).parent).stdout.strip(),
              "machine": machine(), "shape": {"batch": BATCH, "length": args.length, "scored": args.scored},
              "steps": args.steps, "bound_gflops_bf16": bound, "bound_gflops_bf16_measured": bounds,
              "gflop_per_step": round(flops / 1e9, 2), "modes": {}}
    for mode in ("eager", "compiled"):
        seconds = runs[mode]["seconds"]
        step = statistics.median(seconds[1:])
        result["modes"][mode] = {"step_seconds": [round(s, 3) for s in seconds], "median_step_seconds": round(step, 3),
                                 "first_step_seconds": round(seconds[0], 2),
                                 "percent_of_bound": round(100 * flops / step / 1e9 / bound, 1)}
        print(mode, json.dumps(result["modes"][mode]), flush=True)
    eager, compiled = result["modes"]["eager"], result["modes"]["compiled"]
    compile_seconds = compiled["first_step_seconds"] - compiled["median_step_seconds"]
    saved = eager["median_step_seconds"] - compiled["median_step_seconds"]
    result["compile_seconds"] = round(compile_seconds, 1)
    result["saved_per_step_seconds"] = round(saved, 3)
    result["break_even_steps"] = round(compile_seconds / saved) if saved > 0 else None
    replay = runs["matmuls_alone"]
    alone = statistics.median(replay["seconds"][1:])
    result["matmuls_alone"] = {"calls": replay["calls"], "dtypes": replay["dtypes"],
                               "seconds": [round(s, 3) for s in replay["seconds"]],
                               "median_seconds": round(alone, 3),
                               "share_of_eager_step": round(alone / eager["median_step_seconds"], 3),
                               "percent_of_bound": round(100 * flops / alone / 1e9 / bound, 1)}
    print("matmuls alone", json.dumps(result["matmuls_alone"]), "bounds", bounds, flush=True)
    sft = load_audit_config("offline").sft
    result["audit_sft_steps"] = round(sft.epochs * -(-sft.max_train_pairs // sft.batch_size))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}: compile {result['compile_seconds']} s, saves {saved:.3f} s a step, "
          f"break-even {result['break_even_steps']} steps")


if __name__ == "__main__":
    main()
