"""What every discriminative arm shares: its run directory, its data, its encoding, its Trainer arguments.

A run directory holds `config.yaml` (the arm and its config), `checkpoints/` (the Trainer's, for resuming;
removed once the run is complete),
`model/` (the final model, renamed into place when complete), `train_log.jsonl`, and after
`safealign eval`, `predictions.jsonl` and `metrics.json`.

Speed (see benchmarks/bench_arms.py): texts are tokenised once, contexts truncated from the left so the
latest turns survive, batches padded only to their own longest sequence and grouped by length, and
gradient checkpointing is off (these models are small; recomputation only costs time).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from safealign.arms import arm_module
from safealign.config import DataConfig, from_dict
from safealign.data.curate import LABELS_DIR, LABELS_FORMAT, label_prepared
from safealign.data.hh_rlhf import Pair, context_text
from safealign.data.prepare import is_prepared, prepare, prepared_taxonomy, read_manifest, read_splits
from safealign.data.prompts import Prompt
from safealign.errors import SafeAlignError
from safealign.io import read_jsonl, sha256_file, write_jsonl_atomic, write_text_atomic
from safealign.models import Precision, load_for_inference, tokenizer_options, uses_bf16
from safealign.progress import track_batches, trainer_progress

MODEL_DIR, CHECKPOINTS, DONE = "model", "checkpoints", "safealign-complete.json"


@dataclass
class ArmConfig:
    data: str = field(default="embedded", metadata={
        "help": "a prepared directory (from `safealign data prepare`), or any data source, prepared and "
                "labelled into <out>/data"})
    model: str = field(default="minilm", metadata={"help": "backbone: offline name, local folder or hub id"})
    out: str = field(default="", metadata={"help": "run directory (default runs/<arm>)"})
    seed: int = field(default=0, metadata={"help": "seed of the model head, data order and dropout"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training pairs"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW peak learning rate (linear decay)"})
    batch_size: int = field(default=16, metadata={"help": "pairs per optimiser step and process"})
    max_length: int = field(default=80, metadata={"help": "tokens per sequence; the context is cut from the left"})
    max_response_tokens: int = field(default=56, metadata={"help": "tokens kept of a response (cut from the right)"})
    max_train_pairs: int | None = field(default=None, metadata={"help": "use at most this many training pairs"})
    save_steps: int = field(default=25, metadata={"help": "checkpoint every this many steps (for resuming)"})
    logging_steps: int = field(default=5, metadata={"help": "log loss every this many steps"})
    eval_batch_size: int = field(default=64, metadata={"help": "sequences per forward pass in eval"})
    precision: Precision = field(default="auto", metadata={
        "help": "training arithmetic: bfloat16 autocast, float32, or auto (bfloat16 where the GPU or CPU "
                "multiplies it natively)"})

    def __post_init__(self):
        for name in ("batch_size", "max_length", "max_response_tokens", "save_steps", "logging_steps",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                raise SafeAlignError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise SafeAlignError("epochs and learning_rate must be > 0")
        if self.max_response_tokens >= self.max_length:
            raise SafeAlignError("max_response_tokens must be below max_length (the context needs room)")


# --------------------------------------------------------------------------- run directory


def start_run(arm: str, cfg) -> Path:
    """The run directory, with config.yaml recording the config and the fingerprints of its inputs. When
    either differs from the last run's, everything that run made (model, checkpoints, classifier stages, the
    data it prepared) is discarded, so a changed seed, data, taxonomy, judge or sft model retrains the arm."""
    run_dir = Path(cfg.out or f"runs/{arm}")
    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"arm": arm, "config": dataclasses.asdict(cfg), "inputs": input_fingerprints(cfg)},
                          sort_keys=False)
    config_path = run_dir / "config.yaml"
    if config_path.is_file() and config_path.read_text() != text:
        # another config's checkpoints must not be resumed, nor its model taken for this one's
        for made in (CHECKPOINTS, MODEL_DIR, "stages", "data"):
            shutil.rmtree(run_dir / made, ignore_errors=True)
    write_text_atomic(config_path, text)
    return run_dir


def input_fingerprints(cfg) -> dict[str, str]:
    """sha256 of what a run reads besides its config: for every config field naming a directory, its prepared
    data's manifest and labels manifest, and a run directory's completion marker (a judge, the sft model)."""
    prints = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not isinstance(value, str) or not value or f.name == "out":
            continue
        for marker in ("manifest.json", f"{LABELS_DIR}/manifest.json", f"{MODEL_DIR}/{DONE}"):
            path = Path(value) / marker
            if path.is_file():
                prints[f"{f.name}/{marker}"] = sha256_file(path)
    return prints


def read_run(run_dir: str | Path, config_cls=None):
    """(arm name, config) of a run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SafeAlignError(f"{run_dir}: not a run directory (no config.yaml); train one with `safealign train`")
    data = yaml.safe_load(path.read_text())
    if config_cls is None:
        return data["arm"], data["config"]
    return data["arm"], from_dict(config_cls, data["config"], where=str(path))


def is_trained(run_dir: Path) -> bool:
    return (run_dir / MODEL_DIR / DONE).is_file()


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest complete checkpoint. The HF Trainer writes a checkpoint's files in place and its
    trainer_state.json last, so one without a readable trainer_state.json was cut short (kill -9 while
    saving): it is removed, and the one before it is used."""
    checkpoints = sorted((run_dir / CHECKPOINTS).glob("checkpoint-*"), key=lambda p: -int(p.name.split("-")[1]))
    for path in checkpoints:
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
    return None


def finish_run(run_dir: Path, trainer, summary: dict, tokenizer=None, merge=None):
    """Save the trained model into a temp folder, rename it to model/, write the training log.

    Every process calls this: the Trainer's save_model gathers the weights under DDP, FSDP or DeepSpeed. Only
    the main process then merges (`merge(adapter_dir, folder)`: e.g. LoRA adapters into the base), writes the
    tokenizer and the marker and renames the folder into place.
    """
    work = run_dir / f".{MODEL_DIR}.tmp"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(work, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    saved = work / "adapter" if merge is not None else work
    trainer.save_model(str(saved))
    if not main:
        return
    if merge is not None:
        merge(saved, work)
        shutil.rmtree(saved)
    if tokenizer is not None:
        tokenizer.save_pretrained(work)
    (work / DONE).write_text(json.dumps(summary, indent=2))
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)
    os.replace(work, run_dir / MODEL_DIR)
    write_jsonl_atomic(run_dir / "train_log.jsonl", trainer.state.log_history)
    # A finished run is never resumed: its checkpoints (for a full fine-tune, the weights and twice their size
    # in optimiser state) would only fill the disk.
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)


# --------------------------------------------------------------------------- data


def prepared_dir(source: str, run_dir: Path) -> Path:
    """Where a run's data is: `source` if it is a prepared directory, else <run_dir>/data."""
    return Path(source) if is_prepared(source) else Path(run_dir) / "data"


def labelled_data(source: str, run_dir: Path, seed: int = 0) -> Path:
    """A prepared and labelled directory: `source` itself, or `source` prepared into <run_dir>/data."""
    prepared = prepared_dir(source, run_dir)
    if not is_prepared(prepared):
        prepare(DataConfig(source=source, seed=seed), prepared)
    labels_manifest = prepared / LABELS_DIR / "manifest.json"
    if not labels_manifest.is_file() or json.loads(labels_manifest.read_text()).get("format") != LABELS_FORMAT:
        label_prepared(prepared, prepared_taxonomy(prepared), seed=read_manifest(prepared)["seed"])
    return prepared


PAIR_PARTS = {"all": "every pair of the split",
              "clean": "the Clean split: the rejected response is harmful (S1-S7, or unsafe by people's label)",
              "benign": "the rest: the rejected response is harm-free (S8), rejected for helpfulness, not safety"}


def load_split(prepared: Path, split: str, part: str = "all") -> list[tuple[Pair, dict]]:
    """(pair, label row) for every pair of a split in `part` (PAIR_PARTS): all, clean, or benign."""
    if part not in PAIR_PARTS:
        raise SafeAlignError(f"pairs must be one of {', '.join(PAIR_PARTS)}, got '{part}'")
    labels = {row["id"]: row for row in read_jsonl(prepared / LABELS_DIR / "labels.jsonl")}
    pairs = read_splits(prepared)[split]
    if part != "all":
        clean = {row["id"] for row in read_jsonl(prepared / LABELS_DIR / "clean" / f"{split}.jsonl")}
        pairs = [p for p in pairs if (p.id in clean) == (part == "clean")]
    return [(p, labels[p.id]) for p in pairs]


TRAIN_PAIR_IDS = "train_pair_ids.json"


def write_pair_ids(run_dir: Path, pairs: list[tuple[Pair, dict]]) -> None:
    """Record which pairs a run trained on (their ids, in order), so two runs' training sets can be compared."""
    write_text_atomic(Path(run_dir) / TRAIN_PAIR_IDS, json.dumps([pair.id for pair, _ in pairs]))


# --------------------------------------------------------------------------- encoding


def encode(tokenizer, context: list[dict] | None, response: str, max_length: int,
           max_response_tokens: int) -> list[int]:
    """Token ids of (context, response) as the model's sentence pair, the context cut from the left.

    The response keeps its first `max_response_tokens` tokens; the context keeps as many of its last
    tokens as fit. Without a context, the response alone (up to max_length).
    """
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if context is None:
        return _with_special_tokens(tokenizer, response_ids[: max_length - 2], None)
    response_ids = response_ids[:max_response_tokens]
    context_ids = tokenizer(context_text(context), add_special_tokens=False)["input_ids"]
    specials = len(_with_special_tokens(tokenizer, [], []))
    room = max(0, max_length - len(response_ids) - specials)
    return _with_special_tokens(tokenizer, context_ids[len(context_ids) - room:] if room else [], response_ids)


def _with_special_tokens(tokenizer, first: list[int], second: list[int] | None) -> list[int]:
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is not None and sep is not None:  # BERT-style: [CLS] a [SEP] b [SEP]
        return [cls, *first, sep] + ([*second, sep] if second is not None else [])
    eos = tokenizer.eos_token_id  # decoder-style: a b <eos>, read at the last token
    return [*first, *(second or []), *([eos] if eos is not None else [])]


# --------------------------------------------------------------------------- training and scoring


def run_trainer(trainer, run_dir: Path):
    """trainer.train(), resumed from the run's last checkpoint, with nothing of the Trainer's on the console:
    its PrinterCallback / ProgressCallback print every raw log dict ({'loss': ...}); they are replaced by one
    progress bar of steps on a terminal (nothing otherwise). The logs stay in the run's train_log.jsonl."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(trainer_progress())
    return trainer.train(resume_from_checkpoint=last_checkpoint(run_dir))


def training_arguments(cls, cfg: ArmConfig, run_dir: Path, **overrides):
    """Trainer arguments shared by the arms (cls: TrainingArguments or one of its trl subclasses)."""
    import torch

    kwargs = dict(
        output_dir=str(run_dir / CHECKPOINTS), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, lr_scheduler_type="linear", warmup_steps=0.1,
        seed=cfg.seed, data_seed=cfg.seed, logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1, report_to="none",
        train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
        gradient_checkpointing=False, dataloader_num_workers=0, disable_tqdm=not sys.stderr.isatty(),
        use_cpu=not torch.cuda.is_available(), bf16=uses_bf16(cfg.precision),
    )
    kwargs.update(overrides)
    return cls(**kwargs)


def pad_batch(sequences: list[list[int]], pad_id: int):
    """Right-padded (B, T) input_ids and attention_mask, T = the longest sequence of this batch."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def score_sequences(model, sequences: list[list[int]], pad_id: int, batch_size: int, description: str = "scoring"):
    """The model's logits for every sequence, batched longest-first with dynamic padding. -> (N, L) tensor."""
    import torch

    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    device = next(model.parameters()).device
    out = [None] * len(sequences)
    model.eval()
    with torch.no_grad():
        for start in track_batches(len(order), batch_size, description, "sequences"):
            index = order[start: start + batch_size]
            ids, mask = pad_batch([sequences[i] for i in index], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()  # (B, L)
            for row, i in enumerate(index):
                out[i] = logits[row]
    return torch.stack(out) if out else torch.empty(0)


def quiet_transformers():
    """Keep the Trainer's and loader's own progress bars and load reports out of non-interactive output."""
    import warnings

    from transformers.utils import logging

    # trl's configs still set the deprecated alias; we pass it False on purpose (see training_arguments)
    warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated")
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    if not sys.stderr.isatty():
        import datasets

        datasets.disable_progress_bars()
    logging.set_verbosity_error()
    if not sys.stderr.isatty():
        logging.disable_progress_bar()


class RunScorer:
    """The reward model or cost model of a run directory, read the way it was trained: raw scores (Safe RLHF
    trains on these)."""

    def __init__(self, run_dir: str | Path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.run_dir = Path(run_dir)
        self.name, _ = read_run(self.run_dir)
        if self.name not in ("reward_model", "cost_model"):
            raise SafeAlignError(f"{run_dir}: a scorer is a reward_model or cost_model run, not {self.name}")
        _, self.cfg = read_run(self.run_dir, arm_module(self.name).CONFIG)
        self.higher_is_better = self.name == "reward_model"
        self.tokenizer = AutoTokenizer.from_pretrained(self.run_dir / MODEL_DIR, **tokenizer_options())
        self.model = load_for_inference(AutoModelForSequenceClassification, self.run_dir / MODEL_DIR)

    def score(self, prompts: list[Prompt], responses: list[str]) -> list[float]:
        sequences = [encode(self.tokenizer, list(p.messages), r or " ", self.cfg.max_length,
                            self.cfg.max_response_tokens) for p, r in zip(prompts, responses)]
        return score_sequences(self.model, sequences, self.tokenizer.pad_token_id, self.cfg.eval_batch_size,
                               f"judging with {self.name}")[:, 0].tolist()
