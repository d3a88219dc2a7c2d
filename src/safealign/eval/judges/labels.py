"""The human-labelled rows the judges are fitted and measured on, read with one clear error per bad row.

- GPTFuzz (embedded, MIT): responses to 100 harmful questions, `harmful` = the response complies;
- XSTest v2 completions (not shipped: `../shared/data/judge-validation/xstest-completions`): human refusal
  labels, partial refusal = refusal, as XSTest counts it;
- the OPT-350M study's responses (embedded, MIT) with OpenAssistant deberta ratings (a model judge);
- a reviewer's own labelled responses (prompt, response, label), to measure any judge on data of their own.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from importlib import resources
from pathlib import Path

from safealign.data.prompts import Prompt, messages_of
from safealign.errors import BadInputError, SafeAlignError

XSTEST_LABELS = {"1_full_compliance": False, "2_full_refusal": True, "3_partial_refusal": True}


def _csv_rows(path: Path, required: tuple[str, ...]):
    """(row number, row) of a CSV (plain or .gz), after checking its header has `required`."""
    path = Path(path)
    if not path.is_file():
        raise SafeAlignError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (OSError, EOFError) as e:
        raise BadInputError(path, None, f"not a readable gzip file ({e})") from None
    except UnicodeDecodeError as e:
        raise BadInputError(path, None, f"invalid UTF-8 (byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise BadInputError(path, 1, f"missing column '{missing[0]}' (expected columns: {', '.join(required)})")
    for row in reader:
        yield reader.line_num, row


def read_gptfuzz(path: str | Path) -> list[dict]:
    """GPTFuzz's labelled responses: [{question, response, harmful}]; a bad row is one clear error."""
    return _harm_rows(path, "question", "Response")


def _binary_rows(path: str | Path, question: str, response: str):
    """(line, row) of a CSV with the columns question, response and a 0/1 `label`, each checked as it is read: a
    label other than 0 or 1, an empty response or a file of no rows is one clear error naming the file and row."""
    found = False
    for line, row in _csv_rows(Path(path), (question, response, "label")):
        if row["label"] not in ("0", "1"):
            raise BadInputError(path, line, f"label must be 0 or 1, got {row['label']!r}")
        if not (row[response] or "").strip():
            raise BadInputError(path, line, "empty response")
        found = True
        yield line, row
    if not found:
        raise BadInputError(path, None, "no rows")


def _harm_rows(path: str | Path, question: str, response: str) -> list[dict]:
    """[{question, response, harmful}] from a CSV with a 0/1 `label` (1 = harmful); a bad row is one clear error."""
    return [{"question": row[question], "response": row[response], "harmful": row["label"] == "1"}
            for _, row in _binary_rows(path, question, response)]


def read_xstest_completions(path: str | Path) -> list[dict]:
    """XSTest completions with human labels: [{id, type, prompt, response, refusal}] (partial refusal = refusal)."""
    rows = []
    for line, row in _csv_rows(Path(path), ("id", "prompt", "completion", "final_label")):
        if row["final_label"] not in XSTEST_LABELS:
            raise BadInputError(path, line, f"final_label must be one of {', '.join(XSTEST_LABELS)}, "
                                            f"got {row['final_label']!r}")
        if not (row["completion"] or "").strip():
            raise BadInputError(path, line, "empty response")
        rows.append({"id": row["id"], "type": row.get("type", ""), "prompt": row["prompt"],
                     "response": row["completion"], "refusal": XSTEST_LABELS[row["final_label"]]})
    if not rows:
        raise BadInputError(path, None, "no rows")
    return rows


def read_xstest_folder(folder: str | Path) -> dict[str, list[dict]]:
    """model -> its XSTest v2 completions with human labels, for every xstest_v2_completions_<model>.csv."""
    files = sorted(Path(folder).glob("xstest_v2_completions_*.csv"))
    if not files:
        raise SafeAlignError(f"{folder}: no xstest_v2_completions_*.csv")
    return {f.stem.rsplit("_", 1)[1]: read_xstest_completions(f) for f in files}


def xstest_held_out(row: dict) -> bool:
    """An even-numbered XSTest prompt: the half not read while the refusal rules were written (but for one rule
    checked on every row: see cards.xstest_refusal_cards)."""
    return int(row["id"].split("-")[-1]) % 2 == 0


def read_pku_saferlhf_mini(path: str | Path) -> list[dict]:
    """PKU-SafeRLHF's safety labels of Alpaca-7B answers (JailbreakEval's 4,000-row sample): [{question, response,
    harmful}]. CC-BY-NC: validation only, never shipped or trained on."""
    return _harm_rows(path, "question", "answer")


def read_labelled_responses(path: str | Path) -> list[dict]:
    """A reviewer's own human labels, a CSV (plain or .gz) with columns prompt, response, label (1 = the role's
    positive class: harmful for harm, a refusal for refusal; 0 = not): [{prompt, response, label}]; a bad row is
    one clear error naming the file and row."""
    rows = []
    for line, row in _binary_rows(path, "prompt", "response"):
        if not (row["prompt"] or "").strip():
            raise BadInputError(path, line, "empty prompt")
        rows.append({"prompt": row["prompt"], "response": row["response"], "label": row["label"] == "1", "line": line})
    return rows


PANDALM_VOTES = {0: None, 1: "a", 2: "b"}


def read_pandalm(path: str | Path) -> list[dict]:
    """PandaLM's human pairwise preferences: [{instruction, response_a, response_b, preferred}], `preferred` the
    majority of the three annotators ('a', 'b', or None for a tie or no majority). A JSON list (plain or .gz)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise BadInputError(path, None, "expected a non-empty JSON list of pairs")
    rows = []
    for index, item in enumerate(data, start=1):
        missing = [k for k in ("instruction", "response1", "response2", "annotator1", "annotator2", "annotator3")
                   if not isinstance(item, dict) or k not in item]
        if missing:
            raise BadInputError(path, index, f"missing field '{missing[0]}'")
        votes = [item[f"annotator{i}"] for i in (1, 2, 3)]
        if any(v not in PANDALM_VOTES for v in votes):
            raise BadInputError(path, index, f"annotator labels must be 0, 1 or 2, got {votes}")
        counted = [PANDALM_VOTES[v] for v in votes]
        majority = next((side for side in ("a", "b") if counted.count(side) >= 2), None)
        instruction = str(item["instruction"]) + (f"\n{item['input']}" if item.get("input") else "")
        rows.append({"instruction": instruction, "response_a": str(item["response1"]),
                     "response_b": str(item["response2"]), "preferred": majority})
    return rows


def read_hhh(path: str | Path) -> list[dict]:
    """Anthropic's HHH alignment pairs: [{instruction, response_a, response_b, preferred, source}]; the better
    response is a on odd rows and b on even rows."""
    path = Path(path)
    rows = []
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInputError(path, index, f"malformed JSON ({e.msg})") from None
        missing = [k for k in ("prompt", "chosen", "rejected", "source") if k not in item]
        if missing:
            raise BadInputError(path, index, f"missing field '{missing[0]}'")
        better_first = index % 2 == 1  # alternate sides, so that both answers occur and κ is defined
        a, b = (item["chosen"], item["rejected"]) if better_first else (item["rejected"], item["chosen"])
        rows.append({"instruction": item["prompt"], "response_a": a, "response_b": b,
                     "preferred": "a" if better_first else "b", "source": item["source"]})
    if not rows:
        raise BadInputError(path, None, "no rows")
    return rows


def _read_json(path: Path):
    if not path.is_file():
        raise SafeAlignError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    except json.JSONDecodeError as e:
        raise BadInputError(path, e.lineno, f"malformed JSON ({e.msg})") from None


def user_prompts(texts: list[str]) -> list[Prompt]:
    return [Prompt(f"q{i}", "judge", ({"role": "user", "content": t},), "judge") for i, t in enumerate(texts)]


STUDY_MODELS = ("1_base", "2_sft", "3_dpo", "4_sftdpo")


def study_responses() -> list[dict]:
    folder = Path(str(resources.files("safealign.data") / "embedded" / "opt350m_study"))
    rows = []
    for model in STUDY_MODELS:
        for prompt_set in ("harmful", "helpful"):
            path = folder / f"{model}_{prompt_set}.json"
            for i, item in enumerate(json.loads(path.read_text(encoding="utf-8")), start=1):
                messages = messages_of(item["prompt"], str(path), i, drop_trailing_assistant=True)
                rows.append({"model": model, "set": prompt_set, "rating": float(item["rating"]),
                             "prompt": Prompt(f"{model}-{prompt_set}-{i:03d}", prompt_set, messages, "opt350m-study"),
                             "response": item["response"]})
    return rows
