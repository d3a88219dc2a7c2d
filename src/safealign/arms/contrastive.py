"""Arm C: a sentence encoder fine-tuned with a triplet loss, via sentence-transformers.

anchor = the context, positive = the chosen response, negative = the rejected one;

    loss = mean( max(0, d(a, p) - d(a, n) + margin) ),  d = 1 - cos,  margin = 0.5   (losses.triplet)

Evaluation (eval/contrastive_eval.py) embeds test responses with the stock encoder and with the fine-tuned one:
silhouette of chosen-vs-rejected embeddings (cosine), kNN F1 (k=5, fitted on train responses, F1 of "rejected"),
the pairwise rate at which the chosen response sits closer to its context than the rejected one, and a t-SNE plot
of the test embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from safealign.arms.common import (
    ArmConfig,
    finish_run,
    is_trained,
    labelled_data,
    load_split,
    quiet_transformers,
    run_trainer,
    start_run,
    training_arguments,
)
from safealign.data.hh_rlhf import context_text
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
    # no hub model card here: its widget examples are computed under a tqdm bar that reached every console and log
    model.model_card_data.set_widget_examples = lambda dataset: None
    pairs = load_split(prepared, "train")[: cfg.max_train_pairs]
    dataset = Dataset.from_dict(triplets(model.tokenizer, pairs, cfg))
    args = training_arguments(SentenceTransformerTrainingArguments, cfg, run_dir,
                              train_sampling_strategy="random", remove_unused_columns=True)
    loss = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=cfg.margin)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    result = run_trainer(trainer, run_dir)
    finish_run(run_dir, trainer, summary={"train_pairs": len(dataset), "prepared": str(prepared),
                                          "train_seconds": round(result.metrics["train_runtime"], 2)})
    return run_dir


def embed(model, texts: list[str], batch_size: int):
    return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)  # (N, D), unit norm


CONFIG = ContrastiveConfig
