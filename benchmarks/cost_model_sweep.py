"""Which cost model puts C = 0 between safe and unsafe? The offline cost model (MiniLM, the default audit's Clean
pairs + 500 sign-only pairs, one epoch) trained at several learning rates, with and without the class-balanced
sign term, each scored on the **dev** split (the choice) and the test split (reported, not chosen on).

    python benchmarks/cost_model_sweep.py --audit runs/audit [--lrs 5e-5 1.5e-4 3e-4 6e-4]
    python benchmarks/cost_model_sweep.py --audit runs/audit --lrs 3e-5 3e-4 --no-baseline --name gpu \
        --set max_train_pairs=null epochs=2 batch_size=32 max_length=256 max_response_tokens=128   # gpu.yaml's sizes

Safe RLHF's d = 0 reads "C > 0 is unsafe", so the figure that matters is the sign at zero: F1 of the unsafe class
(the data's safety labels, `data.curate.safety`) with C > 0 as the prediction; pairwise accuracy (the rejected
response costs more) beside it. Results: benchmarks/results/cost_model.json (cost_model_NAME.json with --name); the
shipped setting is the dev-best. --set overlays config fields on the shipped YAML; --no-baseline skips the old default
(5e-5, unbalanced).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from safealign.arms import cost_model
from safealign.arms.common import MODEL_DIR, load_split
from safealign.audit import arm_config_path
from safealign.config import load_config
from safealign.eval.metrics import pairwise_metrics
from safealign.eval.pair_scores import safety_cases, score_pairs, sign_at_zero
from safealign.models import load_for_inference, tokenizer_options

RESULTS = Path(__file__).parent / "results" / "cost_model.json"


def scored(run_dir: Path, cfg, prepared: Path, splits=("dev", "test")) -> dict:
    """{split: sign at zero, share flagged, pairwise accuracy} of the trained cost model in run_dir."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / MODEL_DIR, **tokenizer_options())
    model = load_for_inference(AutoModelForSequenceClassification, run_dir / MODEL_DIR)
    out = {}
    for split in splits:
        pairs = load_split(prepared, split)
        chosen, rejected = score_pairs(model, tokenizer, pairs, cfg)
        scores, unsafe = safety_cases(pairs, chosen, rejected, lambda s: s)
        out[split] = {"sign_at_zero": sign_at_zero(scores, unsafe),
                      "predicted_unsafe_share": round(sum(s > 0 for s in scores) / len(scores), 4),
                      "pairwise": pairwise_metrics(rejected, chosen)["pairwise_accuracy"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", required=True, help="an audit run directory (its data/ is the prepared split)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[5e-5, 1.5e-4, 3e-4, 6e-4])
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides of the shipped cost model YAML")
    parser.add_argument("--no-baseline", action="store_true", help="skip the old default (5e-5, unbalanced)")
    parser.add_argument("--name", help="write cost_model_NAME.json")
    args = parser.parse_args()
    prepared = Path(args.audit) / "data"
    shipped = load_config(cost_model.CostModelConfig, arm_config_path("cost_model"))
    base = load_config(cost_model.CostModelConfig, arm_config_path("cost_model"), args.set)
    variants = ([] if args.no_baseline else [(False, 5e-5)]) + [(True, lr) for lr in args.lrs]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for balance, lr in variants:
            cfg = replace(base, data=str(prepared), out=f"{tmp}/b{int(balance)}-{lr:g}", learning_rate=lr,
                          sign_balance=balance)
            start = time.perf_counter()
            run = cost_model.train(cfg)
            seconds = round(time.perf_counter() - start, 1)
            rows.append({"sign_balance": balance, "learning_rate": lr, "train_seconds": seconds}
                        | scored(run, cfg, prepared))
            print(json.dumps({k: rows[-1][k] for k in ("sign_balance", "learning_rate")}),
                  "dev F1 at 0:", rows[-1]["dev"]["sign_at_zero"]["f1"], flush=True)
    best = max(rows, key=lambda r: r["dev"]["sign_at_zero"]["f1"])
    results = RESULTS.with_name(f"cost_model_{args.name}.json") if args.name else RESULTS
    results.write_text(json.dumps({
        "what": "cost model variants on the default audit's split: sign at C = 0 and pairwise accuracy",
        "audit": str(args.audit), "overrides": args.set, "chosen_on": "dev: F1 of 'C > 0' for the unsafe class",
        "dev_best": {"sign_balance": best["sign_balance"], "learning_rate": best["learning_rate"]},
        "shipped": {"sign_balance": shipped.sign_balance, "learning_rate": shipped.learning_rate},
        "variants": rows}, indent=1) + "\n")
    print("wrote", results)


if __name__ == "__main__":
    main()
