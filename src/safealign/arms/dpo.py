"""DPO: direct preference optimisation of the policy on (chosen, rejected), with trl's DPOTrainer.

    loss = -log σ(β [log π(y_c|x)/π_ref(y_c|x) - log π(y_r|x)/π_ref(y_r|x)])

LoRA r=16, alpha=32 on q/k/v/o by default, so the reference is the same weights with the adapters off
(no second copy of the model); QLoRA (load_in_4bit) on a GPU. `reference` names the starting policy and
reference: the base policy for `dpo`, an SFT run's model for `sft_dpo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

ARM = "dpo"


@dataclass
class DPOArmConfig(PolicyConfig):
    beta: float = field(default=0.1, metadata={"help": "DPO temperature β"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW peak learning rate (paper, Qwen QLoRA: 5e-6)"})
    batch_size: int = field(default=4, metadata={"help": "pairs per step and process"})
    max_train_pairs: int | None = field(default=64, metadata={"help": "training pairs (offline: ~2-3 CPU minutes)"})


def dpo_rows(tokenizer, pairs, cfg: PolicyConfig) -> list[dict]:
    def reply(text):
        return [{"role": "assistant", "content": response_text(tokenizer, text, cfg.max_response_tokens)}]
    return [{"prompt": trim_context(tokenizer, pair.context, cfg.max_prompt_tokens),
             "chosen": reply(pair.chosen), "rejected": reply(pair.rejected)} for pair, _ in pairs]


def train(cfg: DPOArmConfig, arm: str = ARM) -> Path:
    run_dir = start_run(arm, cfg)
    if is_trained(run_dir):
        return run_dir
    quiet_transformers()
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    prepared = labelled_data(cfg.data, run_dir, cfg.seed)
    set_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model, cfg)
    dataset = Dataset.from_list(dpo_rows(tokenizer, train_pairs(prepared, cfg), cfg))
    args = training_arguments(DPOConfig, cfg, run_dir, beta=cfg.beta, max_length=cfg.max_length,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              train_sampling_strategy="random", remove_unused_columns=False)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(cfg))
    response_only = project_response_tokens_only(trainer)
    result = run_trainer(trainer, run_dir)
    finish_run(run_dir, trainer, tokenizer=tokenizer, merge=merge_adapter(cfg), summary={
        "train_pairs": len(dataset), "prepared": str(prepared), "base": cfg.model, "beta": cfg.beta,
        "train_seconds": round(result.metrics["train_runtime"], 2), "response_only_head": response_only})
    return run_dir


CONFIG = DPOArmConfig
