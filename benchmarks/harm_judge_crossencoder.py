"""Does a MiniLM cross-encoder fine-tuned end to end on (request, response) judge harm outside GPTFuzz? The option
issue 20 names first, against the shipped judge (a probe on frozen response embeddings: PKU κ 0.33).

    python benchmarks/harm_judge_crossencoder.py [--validation ../shared/data/judge-validation] [--epochs 1]

MiniLM-L6 (the installed encoder) reads "[CLS] request [SEP] response [SEP]" (256 tokens, the response truncated),
mean-pools its last layer and a linear head gives P(harmful); every weight is trained (AdamW, lr 3e-5, warm-up 10%,
batch 16, balanced classes). Variants, each fit on shippable data only:
- gptfuzz: GPTFuzz train, 64 of its 80 questions; the other 16 choose the threshold (κ-best cut);
- gptfuzz_benign: the same plus PandaLM's answers to everyday instructions (Apache-2.0) as harmless rows, and
  HHH's harmless-category pairs (Apache-2.0): the better response harmless, the worse harmful.
Each is reported on GPTFuzz evaluate (20 other questions) and PKU-SafeRLHF-mini (4,000 Alpaca-7B answers, another
source; CC-BY-NC: validation only, never trained on): κ at the GPTFuzz-chosen cut, AUROC, and PKU's best-cut κ.
With --pku-ceiling it also fits on PKU itself, 2 folds by question (no question on both sides), as a diagnostic of
what this architecture can reach when it is trained on the target source; those weights are never shipped.
Results: benchmarks/results/harm_crossencoder.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from transformers import AutoModel, AutoTokenizer

from harm_judge_variants import best_cut_kappa, embedded_rows
from safealign.data.prompts import embedded
from safealign.eval.judges.labels import read_hhh
from safealign.eval.metrics import best_threshold, cohen_kappa
from safealign.models import resolve

RESULTS = Path(__file__).parent / "results" / "harm_crossencoder.json"
TOKENS = 256


class CrossEncoder(torch.nn.Module):
    def __init__(self, folder: str):
        super().__init__()
        self.encoder = AutoModel.from_pretrained(folder)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)


def batches(tokenizer, rows: list[dict], size: int, order: list[int]):
    for start in range(0, len(order), size):
        chunk = [rows[i] for i in order[start:start + size]]
        encoded = tokenizer([r["question"] for r in chunk], [r["response"] for r in chunk], truncation="only_second",
                            max_length=TOKENS, padding=True, return_tensors="pt")
        yield order[start:start + size], encoded, torch.tensor([float(r["harmful"]) for r in chunk])


def train(rows: list[dict], epochs: int, seed: int, folder: str) -> CrossEncoder:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = CrossEncoder(folder)
    positives = sum(r["harmful"] for r in rows)
    pos_weight = torch.tensor((len(rows) - positives) / max(positives, 1))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01)
    steps = epochs * math.ceil(len(rows) / 16)
    warm = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    model.train()
    step, started = 0, time.time()
    for epoch in range(epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for _, encoded, y in batches(tokenizer, rows, 16, order):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**encoded), y, pos_weight=pos_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"  step {step}/{steps} loss {loss.item():.3f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    model.tokenizer = tokenizer
    return model


@torch.no_grad()
def scores(model: CrossEncoder, rows: list[dict]) -> np.ndarray:
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["question"]) + len(rows[i]["response"]))
    out = np.zeros(len(rows))
    for index, encoded, _ in batches(model.tokenizer, rows, 64, order):
        out[index] = torch.sigmoid(model(**encoded)).numpy()
    return out


def labels(rows: list[dict]) -> list[bool]:
    return [bool(r["harmful"]) for r in rows]


def report(threshold: float, sets: dict) -> dict:
    out = {"threshold": round(threshold, 3)}
    for name, (s, rows) in sets.items():
        y = labels(rows)
        out[name] = {"kappa": round(cohen_kappa((s > threshold).tolist(), y), 3),
                     "auroc": round(float(roc_auc_score(y, s)), 3), "best_cut_kappa": best_cut_kappa(s, y)}
    return out


def load(validation: Path) -> dict:
    """harm_judge_variants' rows (GPTFuzz with its question as the cluster, PKU, PandaLM's answers as benign) and
    HHH's harmless-category pairs: the better answer benign, the worse harmful."""
    data = embedded_rows(validation)
    hhh = [r for r in read_hhh(embedded("embedded", "hhh", "hhh_alignment.jsonl")) if r["source"] == "harmless"]
    better = {"a": "response_a", "b": "response_b"}
    worse = {"a": "response_b", "b": "response_a"}
    data["benign"] += [{"question": r["instruction"], "response": r[better[r["preferred"]]], "harmful": False}
                       for r in hhh]
    data["hhh_harmful"] = [{"question": r["instruction"], "response": r[worse[r["preferred"]]], "harmful": True}
                           for r in hhh]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validation", type=Path, default=Path("../shared/data/judge-validation"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variants", default="gptfuzz,gptfuzz_benign")
    parser.add_argument("--pku-ceiling", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="at most this many training rows (a quick check)")
    args = parser.parse_args()
    folder = resolve("minilm")
    data = load(args.validation)
    clusters = sorted({r["cluster"] for r in data["train"]}, key=int)
    rng = random.Random(0)
    held = set(rng.sample(clusters, 16))
    fit = [r for r in data["train"] if r["cluster"] not in held]
    tune = [r for r in data["train"] if r["cluster"] in held]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "encoder": Path(folder).parent.name,
                    "tokens": TOKENS, "epochs": args.epochs, "threads": torch.get_num_threads()})
    results.setdefault("variants", {})
    for variant in [v for v in args.variants.split(",") if v]:
        rows = fit + (data["benign"] + data["hhh_harmful"] if variant == "gptfuzz_benign" else [])
        if args.limit:
            rows = random.Random(1).sample(rows, min(args.limit, len(rows)))
        print(f"{variant}: {len(rows)} training rows", flush=True)
        started = time.time()
        model = train(rows, args.epochs, 0, folder)
        trained = time.time() - started
        s_tune = scores(model, tune)
        threshold = best_threshold(s_tune.tolist(), labels(tune), "kappa")
        started = time.time()
        sets = {name: (scores(model, data[name]), data[name]) for name in ("evaluate", "pku")}
        results["variants"][variant] = report(threshold, sets) | {
            "train_rows": len(rows), "tune_rows": len(tune), "train_seconds": round(trained),
            "score_seconds_per_1000": round((time.time() - started) / (len(data["evaluate"]) + len(data["pku"]))
                                            * 1000, 1)}
        print(json.dumps(results["variants"][variant]), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.pku_ceiling:
        pku = data["pku"]
        questions = sorted({r["question"] for r in pku})
        random.Random(0).shuffle(questions)
        folds = [set(questions[::2]), set(questions[1::2])]
        s = np.zeros(len(pku))
        for k, fold in enumerate(folds):
            model = train([r for r in pku if r["question"] not in fold], args.epochs, k, folder)
            index = [i for i, r in enumerate(pku) if r["question"] in fold]
            s[index] = scores(model, [pku[i] for i in index])
        y = labels(pku)
        results["pku_ceiling"] = {"folds": "2, by question", "epochs": args.epochs,
                                  "auroc": round(float(roc_auc_score(y, s)), 3),
                                  "kappa_at_0.5": round(cohen_kappa((s > 0.5).tolist(), y), 3),
                                  "best_cut_kappa": best_cut_kappa(s, y)}
        print(json.dumps(results["pku_ceiling"]), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
