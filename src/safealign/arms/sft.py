"""SFT: supervised fine-tuning of the policy on the chosen responses, loss on the response tokens only.

trl's SFTTrainer on prompt-completion rows in chat form (`completion_only_loss`), LoRA by default. The
OPT-350M study's SFT arm: 2 epochs on chosen responses (configs/arms/sft_paper.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safealign.arms.common import (
    finish_run,
    is_trained,
    labelled_data,
    quiet_transformers,
    run_trainer,
    start_run,
    training_arguments,
)
from safealign.arms.policy import (
    PolicyConfig,
    load_policy,
    lora_config,
    merge_adapter,
    project_response_tokens_only,
    train_pairs,
)
from safealign.generate import response_text, trim_context

ARM = "sft"


@dataclass
class SFTArmConfig(PolicyConfig):
    pass


def sft_rows(tokenizer, pairs, cfg: PolicyConfig) -> list[dict]:
    return [{"prompt": trim_context(tokenizer, pair.context, cfg.max_prompt_tokens),
             "completion": [{"role": "assistant",
                             "content": response_text(tokenizer, pair.chosen, cfg.max_response_tokens)}]}
            for pair, _ in pairs]


def sft_trainer(model, tokenizer, dataset, cfg: PolicyConfig, run_dir: Path):
    """trl's SFTTrainer with the loss on the completion only and batches in random order.

    Not grouped by length (training_arguments' default for the other arms), although that pads less (the
    audit's 128 pairs, 87 tokens on average, padded to 94 instead of 115) and trains faster: it trained a less
    safe policy at every seed tried (benchmarks/sft_order.py, results/sft_order.json)."""
    from trl import SFTConfig, SFTTrainer

    args = training_arguments(SFTConfig, cfg, run_dir, max_length=cfg.max_length, completion_only_loss=True,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              train_sampling_strategy="random", remove_unused_columns=True)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(cfg))


def train(cfg: SFTArmConfig) -> Path:
    run_dir = start_run(ARM, cfg)
    if is_trained(run_dir):
        return run_dir
    quiet_transformers()
    from datasets import Dataset
    from transformers import set_seed

    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    set_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model, cfg)
    dataset = Dataset.from_list(sft_rows(tokenizer, train_pairs(prepared, cfg), cfg))
    trainer = sft_trainer(model, tokenizer, dataset, cfg, run_dir)
    response_only = project_response_tokens_only(trainer)
    result = run_trainer(trainer, run_dir)
    finish_run(run_dir, trainer, tokenizer=tokenizer, merge=merge_adapter(cfg), summary={
        "train_pairs": len(dataset), "prepared": str(prepared), "base": cfg.model,
        "train_seconds": round(result.metrics["train_runtime"], 2), "response_only_head": response_only})
    return run_dir


CONFIG = SFTArmConfig
