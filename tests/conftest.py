import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SAFEALIGN_QUIET", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def dialogue(*turns: str) -> str:
    """dialogue("hi", "hello", "how?", "so") -> HH-RLHF text, alternating Human / Assistant."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


def hh_row(context: list[str], chosen: str, rejected: str) -> dict:
    return {"chosen": dialogue(*context, chosen), "rejected": dialogue(*context, rejected)}


@pytest.fixture
def write_jsonl(tmp_path):
    def write(rows, name="pairs.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        return path
    return write


@pytest.fixture
def small_pairs_file(write_jsonl):
    """40 well-formed pairs, some harmful, some benign, with shared and distinct contexts."""
    rows = []
    for i in range(40):
        context = [f"question number {i % 25}"] if i % 3 else [f"first {i}", f"answer {i}", f"follow-up {i}"]
        rows.append(hh_row(context, f"I'm sorry, but I can't help with that ({i}).",
                           f"Sure, you could steal it and kill the guard ({i})." if i % 2 else f"Maybe later {i}."))
    return write_jsonl(rows)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory):
    """A random 2-layer Llama with MiniLM's tokenizer, saved as a local model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from safealign.models import resolve

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(resolve("minilm"))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    with torch.random.fork_rng():  # the same weights whichever test asks first (tests read its greedy outputs)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT (hidden 16) with MiniLM's tokenizer, saved as a local model folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from safealign.models import resolve

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve("minilm"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory):
    """The first 300 embedded pairs, prepared and labelled (a small real sample)."""
    from safealign.config import DataConfig
    from safealign.data.curate import label_prepared
    from safealign.data.prepare import prepare
    from safealign.data.taxonomy import load_taxonomy

    out = prepare(DataConfig(max_pairs=300), tmp_path_factory.mktemp("data") / "prep")
    label_prepared(out, load_taxonomy())
    return out


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium's path; CI installs it (.ci/run), elsewhere the test is skipped without it."""
    import os
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium for the report tests: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run_chromium(chromium: str, page, *flags: str, timeout: int = 90) -> str:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={profile}", *flags, f"file://{page}"],
                              capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


NO_NETWORK = '''
import os, socket
_LOG = os.environ["SAFEALIGN_NETWORK_LOG"]
def _blocked(*args, **kwargs):
    with open(_LOG, "a") as log:
        log.write(repr(args[:2]) + "\\n")
    raise OSError("network blocked by the SafeAlign test")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def _guard(method):
    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _blocked("connect", address)
        return method(self, address)
    return guarded
socket.socket.connect, socket.socket.connect_ex = _guard(_connect), _guard(_connect_ex)
socket.getaddrinfo = lambda *a, **k: _blocked("getaddrinfo", *a[:1])
socket.create_connection = lambda *a, **k: _blocked("create_connection", *a[:1])
'''


def offline_env(folder: Path) -> dict:
    """An environment whose Python processes cannot open an internet socket (each attempt is logged)."""
    import os

    (folder / "sitecustomize.py").write_text(NO_NETWORK)
    return os.environ | {"PYTHONPATH": str(folder), "SAFEALIGN_NETWORK_LOG": str(folder / "network.log"),
                         "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="session")
def smoke_reference(tmp_path_factory):
    """One uninterrupted smoke audit with the real small models, run with every internet socket blocked."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("smoke")
    env = offline_env(folder)
    out = folder / "run"
    done = subprocess.run([sys.executable, "-m", "safealign.cli", "audit", "--profile", "smoke", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"out": out, "stdout": done.stdout, "env": env, "network_log": folder / "network.log"}


@pytest.fixture(scope="session")
def judges_dir(tmp_path_factory):
    """Real offline judges fitted on every 20th GPTFuzz row (a few seconds), with their cards."""
    from safealign.eval.judges import build_judges

    out = tmp_path_factory.mktemp("judges")
    build_judges(out, log=lambda *a: None, every=20)
    return out
