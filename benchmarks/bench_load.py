"""Load: the data path on 100,000 preference pairs and the eval path on 10,000 prompts, peak memory of each.

    python benchmarks/bench_load.py [--pairs 100000] [--prompts 10000]

Each measurement runs in a fresh process so its peak RSS (ru_maxrss) is its own:
- data: a 100,000-pair HH-RLHF file (the embedded pairs, each repeated with a numbered human turn so every
  pair is distinct) -> prepare (parse, validate, split, write) -> stats -> label (taxonomy, Clean split);
- eval: 10,000 prompts (the AdvBench and benign look-alike prompts, numbered) -> batched greedy generation
  with a random 2-layer Llama (the memory behaviour of the batching, not of a real model's weights) ->
  the MiniLM reward judge scoring every response.
Results go to benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "load.json"


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def data_path(pairs: int, work: Path) -> dict:
    from importlib import resources

    from safealign.config import DataConfig
    from safealign.data.curate import label_prepared
    from safealign.data.prepare import prepare, read_splits
    from safealign.data.stats import data_stats
    from safealign.data.taxonomy import load_taxonomy

    embedded = resources.files("safealign") / "data" / "embedded" / "hh_rlhf_harmless_base_test.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(embedded, "rt")]
    source = work / "pairs.jsonl"
    with source.open("w") as f:
        for i in range(pairs):
            row = rows[i % len(rows)]
            tag = f"\n\nHuman: (copy {i})\n\nAssistant: noted."
            f.write(json.dumps({k: tag + v for k, v in row.items()}) + "\n")
    start = time.perf_counter()
    data_dir = prepare(DataConfig(source=str(source), skip_bad=True), work / "data")
    prepared = time.perf_counter() - start
    stats = data_stats(read_splits(data_dir))
    label_prepared(data_dir, load_taxonomy("default"), data_dir / "labels", 10, 0)
    return {"pairs_written": pairs, "pairs_prepared": stats["all"]["pairs"], "prepare_seconds": round(prepared, 1),
            "total_seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": peak_rss_mib()}


def eval_path(prompts: int, work: Path) -> dict:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from safealign.arms.common import RunScorer
    from safealign.data.prompts import build_prompt_sets
    from safealign.generate import generate_batched
    from safealign.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048)
    model = LlamaForCausalLM(config)
    sets = build_prompt_sets({"train": [], "dev": [], "test": []})
    pool = sets["advbench"] + sets["benign_lookalike"]
    from dataclasses import replace

    items = [replace(pool[i % len(pool)], id=f"load-{i}") for i in range(prompts)]
    start = time.perf_counter()
    responses = generate_batched(model, tokenizer, items, max_new_tokens=16, batch_size=32)
    generated = time.perf_counter() - start
    result = {"prompts": len(responses), "generate_seconds": round(generated, 1)}
    judge_run = work / "judge"
    if judge_run.is_dir():
        scores = RunScorer(judge_run).score(items, responses)
        result["judge_scored"] = len(scores)
    result |= {"total_seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": peak_rss_mib()}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--judge-run", help="a reward_model run dir to score the responses with (optional)")
    parser.add_argument("--only", choices=("data", "eval"))
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.only:
        work = Path(args.work)
        if args.judge_run:
            (work / "judge").symlink_to(Path(args.judge_run).resolve())
        result = data_path(args.pairs, work) if args.only == "data" else eval_path(args.prompts, work)
        print(json.dumps(result))
        return
    results = {"machine": {"cores": __import__("os").cpu_count()}, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for part in ("data", "eval"):
        with tempfile.TemporaryDirectory() as work:
            command = [sys.executable, __file__, "--only", part, "--work", work, "--pairs", str(args.pairs),
                       "--prompts", str(args.prompts)] + (["--judge-run", args.judge_run] if args.judge_run else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[part] = json.loads(done.stdout.strip().splitlines()[-1])
            print(part, results[part], flush=True)
    from safealign.io import write_json_atomic

    write_json_atomic(RESULTS, results)


if __name__ == "__main__":
    main()
