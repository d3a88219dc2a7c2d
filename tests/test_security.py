"""SafeAlign never runs what it reads: no remote code, no pickle weights, safe YAML, no shell."""

import re
from pathlib import Path

import pytest

from safealign.audit import load_audit_config
from safealign.errors import SafeAlignError
from safealign.models import check_weights, load_options, resolve

SRC = Path(__file__).parents[1] / "src" / "safealign"


def test_models_load_without_remote_code_and_from_safetensors_only(monkeypatch):
    monkeypatch.delenv("SAFEALIGN_TRUST_REMOTE_CODE", raising=False)
    monkeypatch.delenv("SAFEALIGN_ALLOW_PICKLE", raising=False)
    assert load_options() == {"trust_remote_code": False, "use_safetensors": True}
    monkeypatch.setenv("SAFEALIGN_TRUST_REMOTE_CODE", "1")
    monkeypatch.setenv("SAFEALIGN_ALLOW_PICKLE", "1")
    assert load_options() == {"trust_remote_code": True, "use_safetensors": None}


def test_every_from_pretrained_passes_the_load_options():
    calls = []
    for path in SRC.rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"(Auto\w*|model_class)\.from_pretrained\(",
                         line) and "gguf_file" not in line:  # the GGUF is ours
                calls.append((path.name, line.strip()))
            elif re.search(r"load_for_inference\(Auto", line):  # models.load_for_inference passes them (in calls)
                calls.append((path.name, "via load_options()"))
    assert len(calls) >= 15
    assert [c for c in calls if "options()" not in c[1]] == []


def test_a_folder_of_pickle_weights_is_refused_before_loading(tmp_path, monkeypatch):
    monkeypatch.delenv("SAFEALIGN_ALLOW_PICKLE", raising=False)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(SafeAlignError, match=r"pytorch_model\.bin.*can run code.*SAFEALIGN_ALLOW_PICKLE=1"):
        resolve(str(tmp_path))
    monkeypatch.setenv("SAFEALIGN_ALLOW_PICKLE", "1")
    assert resolve(str(tmp_path)) == str(tmp_path)
    monkeypatch.delenv("SAFEALIGN_ALLOW_PICKLE")
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_weights(tmp_path)  # safetensors beside it: fine


def test_the_pickle_refusal_reaches_the_cli(tmp_path, capsys, monkeypatch):
    from safealign.cli import main

    monkeypatch.delenv("SAFEALIGN_ALLOW_PICKLE", raising=False)
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    assert main(["models", "resolve", str(tmp_path)]) == 2
    assert "pytorch_model.bin" in capsys.readouterr().err


def test_config_yaml_is_loaded_safely(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "audit.yaml"
    config.write_text(f"out: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SafeAlignError, match=r"audit\.yaml line 1: config is not valid YAML"):
        load_audit_config(path=str(config))
    assert not marker.exists()


def test_nothing_is_handed_to_a_shell():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern in ("os.system(", "shell=True", "os.popen(", "subprocess", "pickle.load"):
            assert pattern not in text, f"{path.name}: {pattern}"
        assert not re.search(r"(?<![\w.])(eval|exec)\(", text), path.name
        assert "torch.load(" not in text or "weights_only=True" in text, path.name


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_take_the_users_umask_not_mkstemps_0600(tmp_path, umask, mode):
    import os

    from safealign.io import write_json_atomic, write_text_atomic

    old = os.umask(umask)
    try:
        text = write_text_atomic(tmp_path / "report.html", "<html></html>")
        data = write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert text.stat().st_mode & 0o777 == mode and data.stat().st_mode & 0o777 == mode
    assert os.umask(old) == old  # reading the umask left it as it was
