import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED, dialogue, hh_row
from safealign.data.hh_rlhf import context_text, parse_dialogue, parse_pair, split_last_assistant
from safealign.data.sources import load_pairs
from safealign.errors import BadInputError, SafeAlignError


def test_parse_single_turn():
    pair = parse_pair(hh_row(["How do I bake bread?"], "Mix flour and water.", "No."), "f.jsonl", 1)
    assert pair.context == [{"role": "user", "content": "How do I bake bread?"}]
    assert (pair.chosen, pair.rejected) == ("Mix flour and water.", "No.")


def test_parse_multi_turn_keeps_earlier_assistant_turns_in_context():
    row = hh_row(["hi", "hello, how can I help?", "tell me a joke"], "Why did the chicken...", "No jokes.")
    pair = parse_pair(row, "f.jsonl", 7)
    assert [t["role"] for t in pair.context] == ["user", "assistant", "user"]
    assert pair.context[1]["content"] == "hello, how can I help?"
    assert pair.source_line == 7
    assert context_text(pair.context) == "Human: hi\n\nAssistant: hello, how can I help?\n\nHuman: tell me a joke"


def test_parse_dialogue_edge_cases():
    # no leading blank lines, a tag with no space, a multi-paragraph turn, two assistant turns in a row
    turns = parse_dialogue("Human: a\n\nAssistant:b\n\npara two\n\nAssistant: c")
    assert turns == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b\n\npara two"},
                     {"role": "assistant", "content": "c"}]
    # "Human:" inside a line (not after a blank line) is content, not a tag
    assert parse_dialogue("\n\nHuman: say Human: hi\n\nAssistant: ok")[0]["content"] == "say Human: hi"
    with pytest.raises(ValueError, match="no 'Human:'"):
        parse_dialogue("just text")
    with pytest.raises(ValueError, match="text before"):
        parse_dialogue("preamble\n\nHuman: a\n\nAssistant: b")
    with pytest.raises(ValueError, match="ends with a human turn"):
        split_last_assistant(parse_dialogue(dialogue("a", "b", "c")))


@pytest.mark.parametrize("record, problem", [
    ({"chosen": dialogue("a", "b")}, "missing field 'rejected'"),
    ({"rejected": dialogue("a", "b")}, "missing field 'chosen'"),
    ({"chosen": 3, "rejected": dialogue("a", "b")}, "'chosen' must be a string"),
    ({"chosen": dialogue("a"), "rejected": dialogue("a", "b")}, "'chosen': dialogue has no assistant turn"),
    ({"chosen": dialogue("a", "  "), "rejected": dialogue("a", "b")}, "'chosen': empty assistant response"),
    ({"chosen": dialogue("a", "x", "q", "b"), "rejected": dialogue("a", "y", "q", "c")}, "differ from turn 2"),
    ({"chosen": "Assistant: b", "rejected": "Assistant: c"}, "context has no human turn"),
    (["not", "a", "dict"], "expected a JSON object"),
])
def test_bad_records_name_file_line_and_problem(record, problem):
    with pytest.raises(BadInputError, match=problem) as info:
        parse_pair(record, "data.jsonl", 12)
    assert str(info.value).startswith("data.jsonl line 12: ")


def test_bad_file_lines(write_jsonl, tmp_path):
    good = hh_row(["q"], "a", "b")
    path = write_jsonl([good, '{"chosen": ', good])
    with pytest.raises(BadInputError, match=r"pairs.jsonl line 2: malformed JSON"):
        load_pairs(str(path))
    loaded = load_pairs(str(path), skip_bad=True)
    assert len(loaded.pairs) == 2 and [e.line for e in loaded.bad] == [2]
    raw = tmp_path / "utf.jsonl"
    raw.write_bytes(json.dumps(good).encode() + b"\n" + b'{"chosen": "\xff"}\n')
    with pytest.raises(BadInputError, match=r"utf.jsonl line 2: invalid UTF-8"):
        load_pairs(str(raw))


def test_sources_json_gz_and_unknown(tmp_path):
    rows = [hh_row(["q1"], "a", "b"), hh_row(["q2"], "c", "d")]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "p.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    assert len(load_pairs(str(tmp_path / "p.json")).pairs) == 2
    assert len(load_pairs(str(tmp_path / "p.jsonl.gz")).pairs) == 2
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(BadInputError, match="must hold a list"):
        load_pairs(str(tmp_path / "obj.json"))
    with pytest.raises(SafeAlignError, match="unknown source 'no such thing'"):
        load_pairs("no such thing")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SafeAlignError, match="no valid preference pairs"):
        load_pairs(str(tmp_path / "empty.jsonl"))


def test_hub_source_fails_at_once_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SafeAlignError, match="needs the model hub, but offline mode is set"):
        load_pairs("Anthropic/hh-rlhf:harmless-base")


def test_embedded_is_the_real_harmless_base_file():
    loaded = load_pairs("embedded")
    assert len(loaded.pairs) + len(loaded.bad) == 2312
    assert len(loaded.bad) == 9  # 4 empty chosen responses, 5 context mismatches: see README
    assert sum("empty assistant response" in e.problem for e in loaded.bad) == 4
    assert sum("do not share the same context" in e.problem for e in loaded.bad) == 5
    with pytest.raises(BadInputError, match="line 87: 'chosen': empty assistant response"):
        load_pairs("embedded", skip_bad=False)
    shared = SHARED / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    if shared.exists():
        assert gzip.open(shared).read() == gzip.open(loaded.files[0]).read()


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
tagged = st.lists(st.tuples(st.sampled_from(["\n\nHuman: ", "\n\nAssistant: ", "Human:", "\n\n", ""]), text),
                  max_size=8).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=400, deadline=None)
@given(chosen=tagged, rejected=tagged)
def test_fuzz_parser_never_crashes(chosen, rejected):
    try:
        pair = parse_pair({"chosen": chosen, "rejected": rejected}, "fuzz.jsonl", 1)
    except BadInputError as e:
        assert str(e).startswith("fuzz.jsonl line 1: ")
    else:
        assert pair.chosen and pair.rejected and pair.context


plain = st.text(alphabet="abcdefghij klmnop.,?!'\n", min_size=1, max_size=30).filter(lambda s: s.strip())


@settings(max_examples=200, deadline=None)
@given(turns=st.lists(plain, min_size=1, max_size=5), chosen=plain, rejected=plain)
def test_fuzz_well_formed_dialogues_round_trip(turns, chosen, rejected):
    context = turns if len(turns) % 2 == 1 else turns[:-1]  # end on a human turn
    pair = parse_pair(hh_row(context, chosen, rejected), "f", 1)
    assert [t["content"] for t in pair.context] == [t.strip() for t in context]
    assert (pair.chosen, pair.rejected) == (chosen.strip(), rejected.strip())


def test_a_huge_line_is_one_clear_error_and_is_never_held_whole(write_jsonl, tmp_path, monkeypatch):
    from safealign.data import sources

    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1024)  # the real limit is 4 MiB; the logic is the same
    good = json.dumps(hh_row(["q"], "a", "b"))
    path = tmp_path / "huge.jsonl"
    path.write_text(good + "\n" + '{"chosen": "' + "x" * 5000 + '"}\n' + good + "\n")
    with pytest.raises(BadInputError, match=r"huge.jsonl line 2: line longer than 1,024 bytes"):
        load_pairs(str(path))
    loaded = load_pairs(str(path), skip_bad=True)
    assert len(loaded.pairs) == 2 and [e.line for e in loaded.bad] == [2]  # line numbers stay right after it
