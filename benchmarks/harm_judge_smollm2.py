"""Does a decoder's reading of (request, response) judge harm outside GPTFuzz better than MiniLM's? A probe on
SmolLM2-135M-Instruct's hidden states (the installed policy model, run as a reader: the request as the user turn,
the response as the assistant turn; each layer's states mean-pooled over the response tokens), against the same
probe on MiniLM embeddings, fit on GPTFuzz train only and reported on GPTFuzz evaluate (20 other questions) and
PKU-SafeRLHF-mini (another source, validation only, CC-BY-NC).

    python benchmarks/harm_judge_smollm2.py [--validation ../shared/data/judge-validation]

A diagnostic beside it, not a judge: each feature set's probe fit **on PKU itself**, 5-fold by question (no
question on both sides), which bounds what the features can represent of PKU's label whatever the training data.
If that bound is near the GPTFuzz-fit κ, the features are the limit; if far above, the training data is.
Row samples (fixed seed) keep this to minutes on 2 cores (MiniLM embeddings come from the embedding cache when it
holds them, so their feature_seconds may be 0). Results: benchmarks/results/harm_smollm2.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from harm_judge_variants import embedded_rows, fitted, measure
from safealign.eval.judges.encoders import embed
from safealign.eval.metrics import cohen_kappa
from safealign.models import resolve

RESULTS = Path(__file__).parent / "results" / "harm_smollm2.json"
LAYERS = (10, 20, 30)  # of SmolLM2-135M's 30
REQUEST_TOKENS, RESPONSE_TOKENS, BATCH = 48, 96, 16


def per_question(rows: list[dict], k: int, seed: int = 0) -> list[dict]:
    """At most k rows of every question (a fixed sample), so every question stays represented."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["question"]].append(row)
    rng = random.Random(seed)
    return [r for q in sorted(groups) for r in rng.sample(groups[q], min(k, len(groups[q])))]


def smollm2_features(rows: list[dict]) -> np.ndarray:
    """Mean over the response tokens of each LAYERS hidden state, concatenated: (N, 3 * 576)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.bfloat16).eval()
    encoded = []
    for row in rows:
        request = tokenizer(row["question"], add_special_tokens=False)["input_ids"][:REQUEST_TOKENS]
        text = tokenizer.apply_chat_template([{"role": "user", "content": tokenizer.decode(request)}],
                                             add_generation_prompt=True, tokenize=False)
        prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        response = tokenizer(row["response"], add_special_tokens=False)["input_ids"][:RESPONSE_TOKENS]
        encoded.append((list(prompt), response))
    order = sorted(range(len(rows)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    out = np.zeros((len(rows), len(LAYERS) * model.config.hidden_size), dtype=np.float32)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in batch)
            ids = torch.full((len(batch), width), pad)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            response_mask = torch.zeros((len(batch), width))
            for j, i in enumerate(batch):  # right-padded: positions as in an unpadded forward
                prompt, response = encoded[i]
                ids[j, :len(prompt) + len(response)] = torch.tensor(prompt + response)
                attention[j, :len(prompt) + len(response)] = 1
                response_mask[j, len(prompt):len(prompt) + len(response)] = 1
            states = model(input_ids=ids, attention_mask=attention, output_hidden_states=True).hidden_states
            weights = response_mask / response_mask.sum(1, keepdim=True).clamp(min=1)  # (B, T)
            pooled = [torch.einsum("bt,btd->bd", weights, states[layer].float()) for layer in LAYERS]
            out[batch] = torch.cat(pooled, dim=1).numpy()
    return out


def minilm_features(rows: list[dict]) -> np.ndarray:
    return embed([row["response"] for row in rows], cache=True)


def in_source_bound(X: np.ndarray, y: np.ndarray, groups: list[str]) -> float:
    """κ of a probe fit on the same source, 5-fold by question, each fold's cut at 0.5 of a balanced fit."""
    predicted = np.zeros(len(y), dtype=bool)
    for train, test in GroupKFold(n_splits=5).split(X, y, groups):
        scaler = StandardScaler().fit(X[train])
        model = fitted(scaler.transform(X[train]), y[train], 1.0)
        predicted[test] = model.predict_proba(scaler.transform(X[test]))[:, 1] > 0.5
    return round(cohen_kappa(predicted.tolist(), y.astype(bool).tolist()), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validation", default="../shared/data/judge-validation")
    parser.add_argument("--train-per-question", type=int, default=15)
    parser.add_argument("--evaluate-per-question", type=int, default=20)
    parser.add_argument("--pku-rows", type=int, default=1000)
    args = parser.parse_args()
    start = time.perf_counter()
    data = embedded_rows(Path(args.validation))
    sets = {"train": per_question(data["train"], args.train_per_question),
            "evaluate": per_question(data["evaluate"], args.evaluate_per_question),
            "pku": random.Random(0).sample(data["pku"], min(args.pku_rows, len(data["pku"])))}
    labels = {k: np.array([r["harmful"] for r in rows], dtype=int) for k, rows in sets.items()}
    results = {}
    for name, featurise in (("minilm_response", minilm_features), ("smollm2_hidden", smollm2_features)):
        began = time.perf_counter()
        X = {k: featurise(rows) for k, rows in sets.items()}
        seconds = round(time.perf_counter() - began, 1)
        scaler = StandardScaler().fit(X["train"])
        for c in (0.01, 1.0):
            model = fitted(scaler.transform(X["train"]), labels["train"], c)
            p = {k: model.predict_proba(scaler.transform(v))[:, 1] for k, v in X.items()}
            results[f"{name}_C{c:g}"] = measure(p["train"], labels["train"],
                                                {"evaluate": (p["evaluate"], labels["evaluate"]),
                                                 "pku": (p["pku"], labels["pku"])})
        results[name] = {"feature_seconds": seconds, "dims": int(X["train"].shape[1]),
                         "pku_in_source_bound_kappa": in_source_bound(X["pku"], labels["pku"],
                                                                      [r["question"] for r in sets["pku"]])}
        print(name, json.dumps({k: v for k, v in results.items() if k.startswith(name)}), flush=True)
    RESULTS.write_text(json.dumps({
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fit": "GPTFuzz train.csv (80 questions), a per-question sample",
        "rows": {k: len(v) for k, v in sets.items()}, "layers": LAYERS,
        "tokens": {"request": REQUEST_TOKENS, "response": RESPONSE_TOKENS},
        "seconds": round(time.perf_counter() - start, 1), "variants": results}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
