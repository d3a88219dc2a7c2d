"""Hub data sources in their own schemas (PKU-SafeRLHF, BeaverTails, HH-RLHF helpful-base), read from small local
files of the same schema."""

import json

import pytest
from tests.conftest import hh_row

from safealign.data.sources import load_pairs, schema_of
from safealign.errors import BadInputError, SafeAlignError


def _pku(i: int, safe0: bool, safe1: bool, better: int, safer: int) -> dict:
    return {"prompt": f"How do I get into house {i}?", "response_0": f"Break the window of house {i}.",
            "response_1": f"Call a locksmith for house {i}.", "is_response_0_safe": safe0, "is_response_1_safe": safe1,
            "better_response_id": better, "safer_response_id": safer, "prompt_source": "test"}


PKU_ROWS = [_pku(0, False, True, 0, 1), _pku(1, True, True, 1, 0), _pku(2, False, False, 1, 1),
            _pku(3, False, True, 1, 1)]


def test_pku_saferlhf_rows_become_safer_or_better_pairs_carrying_both_is_safe_flags(write_jsonl):
    path = write_jsonl(PKU_ROWS, "pku.jsonl")
    safer = load_pairs(str(path), schema="pku_saferlhf").pairs
    assert [p.chosen for p in safer] == ["Call a locksmith for house 0.", "Break the window of house 1.",
                                         "Call a locksmith for house 2.", "Call a locksmith for house 3."]
    assert safer[0].context == [{"role": "user", "content": "How do I get into house 0?"}]
    assert safer[0].meta == {"chosen_safe": True, "rejected_safe": False, "chosen_is_safer": True,
                             "chosen_is_better": False}
    assert safer[1].meta["chosen_safe"] and safer[1].meta["rejected_safe"]  # both safe: kept, flags say so
    better = load_pairs(str(path), schema="pku_saferlhf", preference="better").pairs
    assert better[0].chosen == "Break the window of house 0." and better[0].meta["chosen_is_safer"] is False
    assert not better[0].meta["chosen_safe"] and better[0].meta["rejected_safe"]


def test_beavertails_pairs_a_safe_and_an_unsafe_response_to_one_prompt(write_jsonl):
    rows = [{"prompt": "q1", "response": "unsafe a", "is_safe": False, "category": {"violence": True}},
            {"prompt": "q2", "response": "safe only", "is_safe": True, "category": {}},
            {"prompt": "q1", "response": "safe b", "is_safe": True, "category": {}},
            {"prompt": " q1 ", "response": "unsafe c", "is_safe": False, "category": {}},
            {"prompt": "q1", "response": "safe d", "is_safe": True, "category": {}}]
    pairs = load_pairs(str(write_jsonl(rows, "bt.jsonl")), schema="beavertails").pairs
    assert [(p.chosen, p.rejected, p.source_line) for p in pairs] == [("safe b", "unsafe a", 1),
                                                                       ("safe d", "unsafe c", 4)]
    assert all(p.meta == {"chosen_safe": True, "rejected_safe": False, "chosen_is_safer": True} for p in pairs)


def test_the_schema_follows_the_hub_id_and_helpful_base_reads_as_hh(write_jsonl):
    assert schema_of("PKU-Alignment/PKU-SafeRLHF", "auto") == "pku_saferlhf"
    assert schema_of("PKU-Alignment/BeaverTails", "auto") == "beavertails"
    assert schema_of("Anthropic/hh-rlhf:helpful-base", "auto") == "hh" and schema_of("x.jsonl", "auto") == "hh"
    helpful = write_jsonl([hh_row(["Recipe for bread?"], "Flour, water, yeast, salt.", "No idea.")], "helpful.jsonl")
    assert load_pairs(str(helpful)).pairs[0].chosen == "Flour, water, yeast, salt."
    with pytest.raises(SafeAlignError, match="data.schema must be auto or one of hh, pku_saferlhf, beavertails"):
        schema_of("x", "alpaca")


@pytest.mark.parametrize("change,problem", [
    (lambda r: r.pop("safer_response_id"), "missing field 'safer_response_id' (pku_saferlhf rows have prompt, "),
    (lambda r: r.update(is_response_1_safe="yes"), "field 'is_response_1_safe' must be bool, got 'yes'"),
    (lambda r: r.update(better_response_id=2), "field 'better_response_id' must be 0 or 1, got 2"),
    (lambda r: r.update(better_response_id=True), "field 'better_response_id' must be int, got True"),
    (lambda r: r.update(response_0="  "), "field 'response_0' is empty"),
])
def test_a_row_with_the_wrong_schema_is_one_error_naming_file_row_and_field(write_jsonl, change, problem):
    rows = [dict(r) for r in PKU_ROWS]
    change(rows[2])
    path = write_jsonl(rows, "pku.jsonl")
    with pytest.raises(BadInputError) as e:
        load_pairs(str(path), schema="pku_saferlhf")
    assert str(e.value).startswith(f"{path} line 3: ") and problem in str(e.value)
    skipped = load_pairs(str(path), schema="pku_saferlhf", skip_bad=True)
    assert len(skipped.pairs) == 3 and len(skipped.bad) == 1
    with pytest.raises(BadInputError, match="line 1: missing field 'is_safe'"):
        load_pairs(str(write_jsonl([{"prompt": "q", "response": "r"}], "bt.jsonl")), schema="beavertails")


def test_offline_a_hub_dataset_fails_at_once_naming_it_and_the_local_file_alternative(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SafeAlignError) as e:
        load_pairs("PKU-Alignment/PKU-SafeRLHF")
    assert "PKU-Alignment/PKU-SafeRLHF" in str(e.value) and "data.schema=pku_saferlhf" in str(e.value)
    assert "\n" not in str(e.value)


def test_human_flags_become_the_safety_labels_the_clean_split_the_classifier_and_the_cost_sign(
        write_jsonl, tmp_path, capsys):
    from safealign.arms.classifier import ClassifierConfig, cases
    from safealign.arms.common import load_split
    from safealign.arms.cost_model import SIGN
    from safealign.cli import main

    rows = [_pku(i, *flags) for i in range(60) for flags in [[(False, True, 0, 1), (True, True, 1, 0),
                                                              (False, False, 0, 1)][i % 3]]]
    path = write_jsonl(rows, "pku.jsonl")
    out = tmp_path / "prepared"
    assert main(["data", "prepare", "--source", str(path), "schema=pku_saferlhf", "--out", str(out)]) == 0
    assert main(["data", "label", "--source", str(out)]) == 0
    capsys.readouterr()
    labels = [json.loads(line) for line in (out / "labels" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 60 and all(r["safety_from"] == "human labels" for r in labels)
    by_id = {r["id"]: r for r in labels}
    pairs = {split: load_split(out, split) for split in ("train", "dev", "test")}
    every = [pl for split in pairs.values() for pl in split]
    for pair, label in every:
        assert label["chosen_safety"] == ("safe" if pair.meta["chosen_safe"] else "unsafe")
        assert label["rejected_safety"] == ("safe" if pair.meta["rejected_safe"] else "unsafe")
    clean = [pl for split in ("train", "dev", "test") for pl in load_split(out, split, part="clean")]
    assert len(clean) == 40 and all(not p.meta["rejected_safe"] for p, _ in clean)  # rejected safe: not a safety pair
    both_unsafe = next((p, label) for p, label in every if not p.meta["chosen_safe"])
    assert (SIGN[by_id[both_unsafe[0].id]["chosen_safety"]], SIGN[by_id[both_unsafe[0].id]["rejected_safety"]]) == (1,
                                                                                                                    1)

    from transformers import AutoTokenizer

    from safealign.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("minilm"))
    both_safe = next(pl for pl in every if pl[0].meta["rejected_safe"])
    assert [c["labels"] for c in cases(tokenizer, [both_unsafe, both_safe], ClassifierConfig(), False)] == [1, 1, 0, 0]


def test_pku_saferlhf_trains_the_reward_model_on_better_and_the_cost_model_on_safer(write_jsonl, tmp_path, capsys):
    """Safe RLHF's own data, no further settings: the reward model learns from every pair oriented by people's
    better_response_id, the cost model from the safer-oriented pairs whose less safe response is unsafe."""
    from safealign.arms.common import load_split
    from safealign.arms.reward_model import HUMAN_HELPFULNESS, RewardModelConfig, helpfulness_pairs
    from safealign.cli import main

    rows = [_pku(i, *[(False, True, 0, 1), (True, True, 1, 0), (False, False, 0, 1)][i % 3]) for i in range(60)]
    path = write_jsonl(rows, "pku.jsonl")
    out = tmp_path / "prepared"
    assert main(["data", "prepare", "--source", str(path), "schema=pku_saferlhf", "--out", str(out)]) == 0
    assert main(["data", "label", "--source", str(out)]) == 0
    capsys.readouterr()
    by_prompt = {r["prompt"]: r for r in rows}
    pairs, what = helpfulness_pairs(out, RewardModelConfig())
    assert what == HUMAN_HELPFULNESS and len(pairs) == len(load_split(out, "train"))  # every pair, not only benign
    for pair, _ in pairs:
        row = by_prompt[pair.context[-1]["content"]]
        assert pair.chosen == row[f"response_{row['better_response_id']}"]  # the better response is chosen
        assert pair.rejected == row[f"response_{1 - row['better_response_id']}"]
    for pair, _ in load_split(out, "train", "clean"):  # the cost model's pairs: safer chosen, rejected unsafe
        row = by_prompt[pair.context[-1]["content"]]
        assert pair.chosen == row[f"response_{row['safer_response_id']}"] and not pair.meta["rejected_safe"]
