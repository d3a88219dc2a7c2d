"""Arm C: a sentence encoder fine-tuned with a triplet loss, via sentence-transformers.

anchor = the context, positive = the chosen response, negative = the rejected one;

    loss = mean( max(0, d(a, p) - d(a, n) + margin) ),  d = 1 - cos,  margin = 0.5   (losses.triplet)

Evaluation embeds test responses with the stock encoder and with the fine-tuned one: silhouette of
chosen-vs-rejected embeddings (cosine), kNN F1 (k=5, fitted on train responses, F1 of "rejected"), the
pairwise rate at which the chosen response sits closer to its context than the rejected one, and a
t-SNE plot of the test embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from safealign.arms.common import (ArmConfig, MODEL_DIR, finish_run, is_trained, labelled_data, last_checkpoint,
                                   load_split, prepared_dir, quiet_transformers, read_run, start_run,
                                   training_arguments)
from safealign.data.hh_rlhf import context_text
from safealign.eval.metrics import binary_metrics
from safealign.eval.stats import rate
from safealign.io import save_figure_atomic, write_json_atomic, write_jsonl_atomic
from safealign.models import resolve

ARM = "contrastive"


@dataclass
class ContrastiveConfig(ArmConfig):
    learning_rate: float = field(default=2e-5, metadata={"help": "AdamW peak learning rate (paper: 2e-5)"})
    batch_size: int = field(default=32, metadata={"help": "triplets per step (paper: 64)"})
    max_length: int = field(default=48, metadata={"help": "tokens per text; contexts keep their last tokens"})
    max_response_tokens: int = field(default=40, metadata={"help": "unused here: responses are cut at max_length"})
    margin: float = field(default=0.5, metadata={"help": "triplet margin (cosine distance)"})
    knn_k: int = field(default=5, metadata={"help": "neighbours of the kNN probe"})
    knn_train_pairs: int = field(default=600, metadata={"help": "train pairs whose responses fit the kNN probe"})


def last_tokens(tokenizer, text: str, n: int) -> str:
    """The text of the last `n` tokens of `text`: the encoder truncates from the right, contexts must not."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= n else tokenizer.decode(ids[-n:])


def triplets(tokenizer, pairs, cfg: ContrastiveConfig) -> dict[str, list[str]]:
    anchors = [last_tokens(tokenizer, context_text(p.context), cfg.max_length - 2) for p, _ in pairs]
    return {"anchor": anchors, "positive": [p.chosen for p, _ in pairs], "negative": [p.rejected for p, _ in pairs]}


def load_encoder(name_or_folder: str, max_length: int):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(name_or_folder, device="cpu" if not _cuda() else None)
    model.max_seq_length = max_length
    return model


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train(cfg: ContrastiveConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir
    quiet_transformers()
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss
    from transformers import set_seed

    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    set_seed(cfg.seed)
    model = load_encoder(resolve(cfg.model), cfg.max_length)
    pairs = load_split(prepared, "train")[: cfg.max_train_pairs]
    dataset = Dataset.from_dict(triplets(model.tokenizer, pairs, cfg))
    args = training_arguments(SentenceTransformerTrainingArguments, cfg, run_dir,
                              train_sampling_strategy="random", remove_unused_columns=True)
    loss = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=cfg.margin)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(run_dir))
    finish_run(run_dir, trainer, summary={"train_pairs": len(dataset), "prepared": str(prepared),
                                          "train_seconds": round(result.metrics["train_runtime"], 2)})
    return run_dir


def embed(model, texts: list[str], batch_size: int):
    return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)  # (N, D), unit norm


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


def evaluate(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    arm, cfg = read_run(run_dir, ContrastiveConfig)
    prepared = prepared_dir(cfg.data, run_dir)
    test = load_split(prepared, "test")
    knn_train = load_split(prepared, "train")[: cfg.knn_train_pairs]
    clean_ids = {p.id for p, _ in load_split(prepared, "test", clean=True)}
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


CONFIG = ContrastiveConfig
