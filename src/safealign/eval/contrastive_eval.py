"""Evaluation of the contrastive encoder (arms/contrastive.py trains it), the stock encoder beside it.

On test responses: silhouette of chosen-vs-rejected embeddings (cosine), kNN F1 (k neighbours fitted on train
responses, F1 of "rejected"), the pairwise rate at which the chosen response sits closer to its context than
the rejected one (on all and on Clean test pairs), and a t-SNE plot of both encoders' embeddings.
"""

from __future__ import annotations

from pathlib import Path

from safealign.arms.common import MODEL_DIR, load_split, prepared_dir, read_run
from safealign.arms.contrastive import ContrastiveConfig, embed, load_encoder, triplets
from safealign.eval.metrics import binary_metrics
from safealign.eval.stats import rate
from safealign.io import save_figure_atomic, write_json_atomic, write_jsonl_atomic
from safealign.models import resolve


def probe(model, tokenizer, test, knn_train, cfg: ContrastiveConfig) -> tuple[dict, list[bool]]:
    """Silhouette, kNN F1 and pairwise closeness of one encoder; also per-pair correctness."""
    import numpy as np
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    responses = [r for p, _ in test for r in (p.chosen, p.rejected)]
    labels = np.array([0, 1] * len(test))  # 1 = rejected
    emb = embed(model, responses, cfg.eval_batch_size)
    anchors = embed(model, triplets(tokenizer, test, cfg)["anchor"], cfg.eval_batch_size)
    train_emb = embed(model, [r for p, _ in knn_train for r in (p.chosen, p.rejected)], cfg.eval_batch_size)
    knn = KNeighborsClassifier(n_neighbors=cfg.knn_k, metric="cosine").fit(train_emb, [0, 1] * len(knn_train))
    predicted = knn.predict(emb)
    knn_metrics = binary_metrics([{"unsafe": bool(y), "predicted_unsafe": bool(p)} for y, p in zip(labels, predicted)])
    closer = [(a @ emb[2 * i]) > (a @ emb[2 * i + 1]) for i, a in enumerate(anchors)]  # chosen nearer its context
    return {"silhouette": round(float(silhouette_score(emb, labels, metric="cosine")), 4),
            "knn_f1": knn_metrics["f1"], "knn_accuracy": knn_metrics["accuracy"],
            "pairwise_accuracy": rate(int(sum(closer)), len(closer)).to_dict()}, [bool(c) for c in closer], emb


def evaluate_contrastive(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    arm, cfg = read_run(run_dir, ContrastiveConfig)
    prepared = prepared_dir(cfg.data, run_dir)
    test = load_split(prepared, "test")
    knn_train = load_split(prepared, "train")[: cfg.knn_train_pairs]
    clean_ids = {p.id for p, _ in load_split(prepared, "test", part="clean")}
    before_model = load_encoder(resolve(cfg.model), cfg.max_length)
    after_model = load_encoder(str(run_dir / MODEL_DIR), cfg.max_length)
    before, _, before_emb = probe(before_model, before_model.tokenizer, test, knn_train, cfg)
    after, closer, after_emb = probe(after_model, after_model.tokenizer, test, knn_train, cfg)
    clean_closer = [c for (p, _), c in zip(test, closer) if p.id in clean_ids]
    metrics = {"arm": arm, "task": "triplet embedding", "before": before, "after": after,
               "clean_pairwise_accuracy": rate(sum(clean_closer), len(clean_closer)).to_dict()}
    write_jsonl_atomic(run_dir / "predictions.jsonl", (
        {"id": p.id, "correct": c, "clean": p.id in clean_ids, "rejected_labels": row["rejected_labels"]}
        for (p, row), c in zip(test, closer)))
    write_json_atomic(run_dir / "metrics.json", metrics)
    plot_tsne(before_emb, after_emb, cfg.seed, run_dir / "tsne.png")
    return metrics


def plot_tsne(before, after, seed: int, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, emb, title in ((axes[0], before, "stock encoder"), (axes[1], after, "after triplet fine-tuning")):
        xy = TSNE(n_components=2, perplexity=min(30, max(2, len(emb) // 4)), random_state=seed,
                  init="pca").fit_transform(emb)
        for label, colour, name in ((0, "tab:blue", "chosen"), (1, "tab:red", "rejected")):
            ax.scatter(xy[label::2, 0], xy[label::2, 1], s=8, c=colour, alpha=0.6, label=name)
        ax.set_title(f"t-SNE of test responses: {title}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend()
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)


