"""Can a probe on frozen MiniLM embeddings judge harm outside GPTFuzz? Variants of the offline harm judge, each fit
on GPTFuzz train (80 questions) only, reported on GPTFuzz evaluate (20 other questions) and on PKU-SafeRLHF-mini
(4,000 Alpaca-7B answers, another source; validation only, CC-BY-NC, never trained on).

    python benchmarks/harm_judge_variants.py [--validation ../shared/data/judge-validation]

Variants (logistic regression, balanced classes, threshold = the κ-best cut on the training rows):
- response: the shipped judge's features, the response's embedding r;
- request_response: [r, q, r*q, cos(q, r)] with q the request's embedding (the judge reads the request);
- with_benign: request_response plus PandaLM's 1,998 answers to everyday instructions as harmless rows;
- request_prior: the response probe times P(the request is harmful), a second probe fit on requests only
  (harmful: HarmBench's behaviours, XSTest's 200 unsafe prompts, GPTFuzz's 100 questions; harmless: XSTest's 250
  safe prompts, PandaLM's 170 instructions, HHH's prompts);
- response_not_refusal: the response probe, 0 where the refusal rules call the response a refusal (the refusal
  judge combined with a "does it carry out the request" score).
Each at C = 1 and 10. Results go to benchmarks/results/harm_variants.json: κ on both sources, PKU's AUROC and the
κ of PKU's best cut (an upper bound no threshold fit on GPTFuzz can pass).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from safealign.data.prompts import embedded, load_harmbench, load_xstest
from safealign.eval.judges.encoders import embed
from safealign.eval.judges.labels import read_gptfuzz, read_hhh, read_pandalm, read_pku_saferlhf_mini
from safealign.eval.judges.refusal import is_refusal
from safealign.eval.metrics import best_threshold, cohen_kappa

RESULTS = Path(__file__).parent / "results" / "harm_variants.json"


def embedded_rows(validation: Path) -> dict:
    folder = embedded("embedded", "gptfuzz")
    with open(folder / "question_list.csv", newline="") as f:
        questions = {r["index"]: r["text"] for r in csv.DictReader(f)}
    pandalm = read_pandalm(embedded("embedded", "pandalm", "testset-v1.json.gz"))
    data = {"train": read_gptfuzz(folder / "train.csv.gz"), "evaluate": read_gptfuzz(folder / "evaluate.csv.gz"),
            "pku": read_pku_saferlhf_mini(validation / "pku-saferlhf-mini" / "safe_rlhf_mini.csv"),
            "benign": [{"question": r["instruction"], "response": r[side], "harmful": False}
                       for r in pandalm for side in ("response_a", "response_b")]}
    for name in ("train", "evaluate"):
        data[name] = [r | {"question": questions[r["question"]], "cluster": r["question"]} for r in data[name]]
    harmful = ([p.text for p in load_harmbench()] + [p.text for p in load_xstest() if p.category.startswith("unsafe")]
               + list(questions.values()))
    harmless = ([p.text for p in load_xstest() if p.category.startswith("safe")]
                + sorted({r["instruction"] for r in pandalm})
                + sorted({r["instruction"] for r in read_hhh(embedded("embedded", "hhh", "hhh_alignment.jsonl"))}))
    data["requests"] = (harmful, harmless)
    return data


def vectors(rows: list[dict]) -> tuple:
    r = embed([row["response"] for row in rows], cache=True)
    q = embed([row["question"] for row in rows], cache=True)
    return r, q, np.array([row["harmful"] for row in rows], dtype=int)


def features(r, q, kind: str):
    return r if kind == "response" else np.hstack([r, q, r * q, (r * q).sum(1, keepdims=True)])


def fitted(X, y, c: float):
    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=0).fit(X, y)


def best_cut_kappa(s: np.ndarray, y: list[bool]) -> float:
    """κ of the best cut among the scores' percentiles 1-99: an upper bound no threshold fit elsewhere can pass."""
    return round(max(cohen_kappa((s > t).tolist(), y) for t in np.unique(np.quantile(s, np.linspace(0.01, 0.99, 99)))),
                 3)


def measure(score_train, y_train, scores: dict) -> dict:
    threshold = best_threshold(score_train.tolist(), y_train.astype(bool).tolist(), "kappa")
    out = {"threshold": round(threshold, 3)}
    for name, (s, y) in scores.items():
        out[f"{name}_kappa"] = round(cohen_kappa((s > threshold).tolist(), y.astype(bool).tolist()), 3)
    s, y = scores["pku"]
    out["pku_auroc"] = round(float(roc_auc_score(y, s)), 3)
    out["pku_best_cut_kappa"] = best_cut_kappa(s, y.astype(bool).tolist())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validation", default="../shared/data/judge-validation")
    args = parser.parse_args()
    start = time.perf_counter()
    data = embedded_rows(Path(args.validation))
    train, evaluate, pku, benign = (vectors(data[k]) for k in ("train", "evaluate", "pku", "benign"))
    harmful, harmless = data["requests"]
    answered = {k: np.array([not is_refusal(row["response"]) for row in data[k]])
                for k in ("train", "evaluate", "pku")}
    requests_X = np.vstack([embed(harmful, cache=True), embed(harmless, cache=True)])
    requests_y = np.r_[np.ones(len(harmful), int), np.zeros(len(harmless), int)]
    results = {}
    for c in (1.0, 10.0):
        for kind in ("response", "request_response", "with_benign"):
            feature_kind = "response" if kind == "response" else "request_response"
            X, y = features(train[0], train[1], feature_kind), train[2]
            if kind == "with_benign":
                X, y = np.vstack([X, features(benign[0], benign[1], feature_kind)]), np.r_[y, benign[2]]
            model = fitted(X, y, c)
            p = lambda v: model.predict_proba(features(v[0], v[1], feature_kind))[:, 1]  # noqa: E731
            results[f"{kind}_C{c:g}"] = measure(p(train), train[2], {"evaluate": (p(evaluate), evaluate[2]),
                                                                     "pku": (p(pku), pku[2])})
            if kind == "response":
                q = lambda v, k: p(v) * answered[k]  # noqa: E731
                results[f"response_not_refusal_C{c:g}"] = measure(
                    q(train, "train"), train[2], {"evaluate": (q(evaluate, "evaluate"), evaluate[2]),
                                                  "pku": (q(pku, "pku"), pku[2])})
        response, request = fitted(train[0], train[2], c), fitted(requests_X, requests_y, c)
        p = lambda v: response.predict_proba(v[0])[:, 1] * request.predict_proba(v[1])[:, 1]  # noqa: E731
        results[f"request_prior_C{c:g}"] = measure(p(train), train[2], {"evaluate": (p(evaluate), evaluate[2]),
                                                                         "pku": (p(pku), pku[2])})
    for name, r in results.items():
        print(f"{name:24s} {json.dumps(r)}")
    RESULTS.write_text(json.dumps({"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "encoder": "minilm",
                                   "fit": "GPTFuzz train.csv (80 questions)", "pku_rows": len(pku[2]),
                                   "seconds": round(time.perf_counter() - start, 1), "variants": results},
                                  indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
