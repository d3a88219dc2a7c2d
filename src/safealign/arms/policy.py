"""What the generative arms share: their config, their data in chat form, loading the policy (with LoRA).

Contexts are trimmed from the left by whole turns until the chat-templated prompt fits `max_prompt_tokens`
(the last human turn always stays), so no turn is cut in half and the latest turns survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from safealign import losses
from safealign.arms.common import ArmConfig, load_split
from safealign.errors import SafeAlignError
from safealign.models import load_options, resolve, tokenizer_options


@dataclass
class PolicyConfig(ArmConfig):
    model: str = field(default="smollm2-135m-instruct", metadata={
        "help": "base policy: offline name, local folder or hub id (chat template applied)"})
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW peak learning rate"})
    batch_size: int = field(default=8, metadata={"help": "sequences (sft) or pairs (dpo) per step and process"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps accumulated per optimiser step"})
    max_length: int = field(default=160, metadata={"help": "tokens of prompt + response"})
    max_response_tokens: int = field(default=64, metadata={"help": "tokens kept of a response"})
    max_train_pairs: int | None = field(default=128, metadata={
        "help": "training pairs (offline default sized for ~2 minutes of CPU per arm)"})
    train_on: Literal["all", "clean"] = field(default="all", metadata={
        "help": "all: every train pair; clean: the Clean pairs only (rejected response harmful, S1-S7), where "
                "the safety signal is"})
    save_steps: int = field(default=4, metadata={"help": "checkpoint every this many steps"})
    logging_steps: int = field(default=1, metadata={"help": "log every this many steps"})
    lora: bool = field(default=True, metadata={"help": "train LoRA adapters instead of every weight"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                    metadata={"help": "modules LoRA adapts"})
    load_in_4bit: bool = field(default=False, metadata={"help": "QLoRA: load the base in 4 bits (GPU only)"})

    @property
    def max_prompt_tokens(self) -> int:
        return self.max_length - self.max_response_tokens

    def __post_init__(self):
        super().__post_init__()
        if self.load_in_4bit and not self.lora:
            raise SafeAlignError("load_in_4bit (QLoRA) needs lora=true")


def train_pairs(prepared, cfg: PolicyConfig) -> list:
    """The (pair, label) rows a policy trains on: the train split (or its Clean part), first max_train_pairs."""
    return load_split(prepared, "train", part=cfg.train_on)[: cfg.max_train_pairs]


def load_policy(name_or_folder: str, cfg: PolicyConfig):
    """(model, tokenizer) of a policy, LoRA-wrapped when cfg.lora; a pad token is set if missing."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve(name_or_folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_options())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {}
    if cfg.load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig

        if not torch.cuda.is_available():
            raise SafeAlignError("load_in_4bit (QLoRA) needs a CUDA GPU and bitsandbytes; on CPU use lora=true alone")

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs, **training_attention(), **load_options())
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def training_attention() -> dict:
    """The attention a policy trains with: on a CPU the eager one (matrix products), elsewhere the model's default.

    At the policies' lengths (<= 128 tokens) torch's fused CPU attention spends more on its backward pass (17% of
    an SFT step in torch's profiler) than the whole attention costs as matrix products. Measured by
    benchmarks/bench_policies.py against the variant safealign_sdpa (results/policies.json)."""
    import torch

    return {} if torch.cuda.is_available() else {"attn_implementation": "eager"}


def lora_config(cfg: PolicyConfig):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM") if cfg.lora else None


def merge_adapter(cfg: PolicyConfig):
    """finish_run's `merge(adapter_dir, folder)` for a LoRA run: the saved adapter is applied to a fresh copy of
    the base policy and merged, so model/ is a plain causal LM folder. It works from the adapter the Trainer
    saved, not from the Trainer's model: under ZeRO-3 or FSDP that model is held in shards (merging it failed
    on an H100), and a QLoRA base is 4-bit, where the fresh base is loaded in full precision. None without LoRA."""
    if not cfg.lora:
        return None

    def merge(adapter_dir, folder):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(resolve(cfg.model), **load_options())
        model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        model.save_pretrained(folder, safe_serialization=True)
    return merge


def project_response_tokens_only(trainer) -> bool:
    """On a CPU, replace the fused LM head trl's SFT and DPO trainers put on the policy with one that projects
    only the positions whose next token is scored (the response's), not every position.

    trl (1.16) scores every position on devices without Triton, prompt and padding included, in float32 tiles
    of the whole vocabulary: on the audit's 128 / 32 pairs it took SFT from 43.9 to 82.6 s and DPO from 25.5 to
    41.0 s (benchmarks/results/policies.json, safealign_lora_dropout against safealign_trl_head). The outputs
    are the ones trl's head returns (log-probs zero where the label is -100, the loss their mean or sum over
    num_items_in_batch, entropy, mean logit and top-1 without gradient); tests/arms/test_policies.py checks them
    and their gradient against trl's on a small model.
    Left to trl (returns False) on a GPU, with more than one process, and for models that scale or cap their
    logits."""
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    config = model.config.get_text_config()
    scaled = any(getattr(config, name, None) is not None for name in (
        "final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling"))
    if trainer.args.device.type != "cpu" or trainer.accelerator.num_processes > 1 or scaled:
        return False
    import functools

    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    fused = model.forward

    @functools.wraps(fused)
    def forward(*args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head or args or shift_labels is not None or kwargs.get("output_router_logits"):
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                         num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = model.base_model(**kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        logits = model.get_output_embeddings()(hidden[mask])  # (tokens scored, V): the response's positions
        scored = losses.token_logprobs(logits, targets[mask])
        with torch.no_grad():
            logp = logits.float().log_softmax(-1)
            extras = {"entropy": -(logp.exp() * logp).sum(-1), "mean_logits": logits.float().mean(-1),
                      "log_sum_sq_probs": torch.logsumexp(2 * logp, -1),
                      "is_top1": logits.argmax(-1) == targets[mask]}
        per_token = {name: torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_scatter(mask, x)
                     for name, x in {"log_probs": scored, **extras}.items()}  # zero where the label is -100
        return FusedCausalLMOutput(loss=losses.next_token_nll(scored, num_items_in_batch), label_mask=mask,
                                   **per_token)

    model.forward = forward
    return True
