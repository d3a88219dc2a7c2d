"""SFT→DPO: DPO that starts from an SFT run's model and uses it as the reference (the study's 4th model).

`sft_run` names a finished sft run directory; its merged model is both the starting policy and, with the
LoRA adapters off, the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from safealign.arms import dpo
from safealign.arms.common import MODEL_DIR, is_trained
from safealign.errors import SafeAlignError

ARM = "sft_dpo"


@dataclass
class SFTDPOConfig(dpo.DPOArmConfig):
    sft_run: str = field(default="runs/sft", metadata={"help": "a finished sft run directory to start from"})


def train(cfg: SFTDPOConfig) -> Path:
    if not is_trained(Path(cfg.sft_run)):
        raise SafeAlignError(f"{cfg.sft_run}: no finished sft run there; train one first "
                             "(`safealign train sft`) or pass sft_run=DIR")
    cfg.model = str(Path(cfg.sft_run) / MODEL_DIR)
    return dpo.train(cfg, arm=ARM)


CONFIG = SFTDPOConfig
