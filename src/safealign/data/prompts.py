"""Evaluation prompt sets for the generative arms, each with its provenance (PROMPT_SETS_VERSION).

- harmful:           the OPT-350M study's 50 harmful prompts (harmless-base test, kill|murder|rape filter) plus
                     the prompts of this run's test split that match the same filter;
- helpful:           the study's 50 helpful-base prompts and the 39 distinct everyday requests among HHH
                     alignment's helpful and honest prompts (Apache-2.0, embedded/hhh/LICENSE): 89, so that a win
                     rate against the base detects about 15 points;
- adversarial:       up to 500 held-out harmless-base prompts (this run's test split), SafeAlign's refusal eval;
- benign_lookalike:  60 harmless requests that use alarming words (kill a process, shoot photos...), written
                     for SafeAlign (data/prompt_sets/benign_lookalike.jsonl), to measure over-refusal;
- advbench:          AdvBench's 520 harmful behaviours (MIT): out-of-distribution harmful requests;
- xstest:            XSTest's 450 prompts (Röttger et al., NAACL 2024; CC-BY-4.0, embedded/xstest/LICENSE): 250 safe
                     prompts in 10 types that look unsafe (over-refusal) and 200 unsafe contrasts; category
                     "<label>/<type>";
- harmbench:         HarmBench's 200 standard and 100 contextual text behaviours (Mazeika et al., ICML 2024; MIT,
                     embedded/harmbench/LICENSE.txt), as direct requests (a contextual one is its context string,
                     "---", then the behaviour, as HarmBench's DirectRequest baseline writes it); category
                     "<functional>/<semantic>". The 100 copyright behaviours are left out: HarmBench judges them
                     with a hash match against the book or lyrics, which SafeAlign does not have.

Every prompt records whether its conversation root (first human turn) occurs in the run's train or dev split
(`seen_in_training`), since the study's prompts come from the same HH-RLHF file our split is cut from and
its conversations branch: "held-out" figures use only unseen prompts. A user's prompt file (.jsonl of
{"id", "prompt"}, or .json list of strings) gets one clear error per bad row.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safealign.data.hh_rlhf import context_text, parse_dialogue
from safealign.data.prepare import conversation_root
from safealign.errors import BadInputError, SafeAlignError

PROMPT_SETS_VERSION = "1.1.0"
PROMPT_SETS = ("harmful", "helpful", "adversarial", "benign_lookalike", "advbench", "xstest", "harmbench")
HARMFUL_FILTER = re.compile(r"\b(?:kill|murder|rape)", re.IGNORECASE)
PROVENANCE = {
    "harmful": "OPT-350M study harmful_prompts.json (MIT) + this split's test prompts matching kill|murder|rape",
    "helpful": "OPT-350M study helpful_prompts.json (MIT; Anthropic HH-RLHF helpful-base) + HHH alignment's helpful "
               "and honest prompts (Apache-2.0), one per distinct opening turn",
    "adversarial": "this split's held-out harmless-base test prompts (Anthropic HH-RLHF, MIT)",
    "benign_lookalike": "written for SafeAlign (data/prompt_sets/benign_lookalike.jsonl)",
    "advbench": "AdvBench harmful_behaviors.csv (llm-attacks, MIT)",
    "xstest": "XSTest xstest_prompts.csv (paul-rottger/exaggerated-safety d7bb5bd, CC-BY-4.0; Röttger et al., 2024)",
    "harmbench": "HarmBench harmbench_behaviors_text_all.csv, standard + contextual (MIT; Mazeika et al., 2024)",
}


@dataclass(frozen=True)
class Prompt:
    id: str
    set: str
    messages: tuple  # ({"role": "user"|"assistant", "content": str}, ...), ends with a user turn
    source: str
    seen_in_training: bool = False
    category: str = ""  # xstest: "<label>/<type>"; harmbench: "<functional>/<semantic>"

    @property
    def text(self) -> str:
        return context_text(list(self.messages))

    def to_row(self) -> dict:
        return {"id": self.id, "set": self.set, "prompt": self.text, "source": self.source,
                "seen_in_training": self.seen_in_training, "category": self.category}


def embedded(*parts: str) -> Path:
    """A file shipped under safealign/data (embedded data, prompt sets, judge cards)."""
    return Path(str(resources.files("safealign.data").joinpath(*parts)))


def messages_of(prompt: str, where: str, line: int, drop_trailing_assistant: bool = False) -> tuple:
    """'Human: ...' (HH-RLHF form, several turns allowed) or plain text -> chat messages ending on the user.

    `drop_trailing_assistant` is for the OPT-350M study's file, 3 of whose 50 prompts end on an Assistant
    turn (that study fed raw text to a base model): the policy then answers the last Human turn.
    """
    text = prompt.strip()
    if not text:
        raise BadInputError(where, line, "empty prompt")
    if not re.match(r"(?:Human|Assistant):", text):
        return ({"role": "user", "content": text},)
    try:
        turns = parse_dialogue(text)
    except ValueError as e:
        raise BadInputError(where, line, str(e)) from None
    while drop_trailing_assistant and turns and turns[-1]["role"] == "assistant":
        turns = turns[:-1]
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"]:
        raise BadInputError(where, line, "a prompt must end with a non-empty Human turn")
    return tuple(turns)


def load_prompt_file(path: str | Path, set_name: str, drop_trailing_assistant: bool = False) -> list[Prompt]:
    """A user's or a shipped prompt file: .jsonl of {"id"?, "prompt"} rows, or a .json list of strings."""
    path = Path(path)
    if not path.is_file():
        raise SafeAlignError(f"{path}: prompt file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(path, None, f"invalid UTF-8 (byte {e.start})") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInputError(path, e.lineno, f"malformed JSON ({e.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, str) for r in rows):
            raise BadInputError(path, None, "a .json prompt file must be a list of strings")
        records = [(i, {"id": f"{set_name}-{i:03d}", "prompt": r}) for i, r in enumerate(rows, 1)]
    else:
        records = list(_jsonl_records(text, path))
    prompts = [Prompt(str(r.get("id", f"{set_name}-{i:03d}")), set_name,
                      messages_of(r["prompt"], str(path), i, drop_trailing_assistant), str(path.name))
               for i, r in records]
    if not prompts:
        raise BadInputError(path, None, "no prompts in file")
    return prompts


MAX_PROMPT_CHARS = 1_000_000  # a prompt is a dialogue, not a book


def _jsonl_records(text: str, path: Path):
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_PROMPT_CHARS:
            raise BadInputError(path, line_no, f"line longer than {MAX_PROMPT_CHARS:,} characters")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInputError(path, line_no, f"malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise BadInputError(path, line_no, "expected an object with a string field 'prompt'")
        yield line_no, row


def load_advbench() -> list[Prompt]:
    path = embedded("embedded", "advbench", "harmful_behaviors.csv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Prompt(f"advbench-{i:03d}", "advbench", ({"role": "user", "content": r["goal"]},), "advbench")
            for i, r in enumerate(rows, 1)]


def load_hhh_requests() -> list[Prompt]:
    """HHH alignment's helpful and honest prompts (Apache-2.0, embedded/hhh/LICENSE): everyday requests, one per
    distinct opening turn (its pairs repeat a prompt, and some prompts open with the same question)."""
    path = embedded("embedded", "hhh", "hhh_alignment.jsonl")
    prompts, openings = [], set()
    for line, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(text)
        if row["source"] not in ("helpful", "honest"):
            continue
        messages = messages_of("Human: " + row["prompt"].strip().strip('"'), str(path), line,
                               drop_trailing_assistant=True)
        opening = re.sub(r"\W+", " ", messages[0]["content"].lower())[:60]
        if opening not in openings:
            openings.add(opening)
            prompts.append(Prompt(f"helpful-hhh-{len(prompts) + 1:03d}", "helpful", messages, "hhh",
                                  category=row["source"]))
    return prompts


def _csv_rows(*parts: str) -> list[dict]:
    with open(embedded(*parts), encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_xstest() -> list[Prompt]:
    return [Prompt(f"xstest-{int(r['id']):03d}", "xstest", ({"role": "user", "content": r["prompt"]},), "xstest",
                   category=f"{r['label']}/{r['type']}")
            for r in _csv_rows("embedded", "xstest", "xstest_prompts.csv")]


def load_harmbench() -> list[Prompt]:
    prompts = []
    for r in _csv_rows("embedded", "harmbench", "harmbench_behaviors_text_all.csv"):
        if r["FunctionalCategory"] == "copyright":
            continue
        text = f"{r['ContextString']}\n\n---\n\n{r['Behavior']}" if r["ContextString"] else r["Behavior"]
        prompts.append(Prompt(f"harmbench-{r['BehaviorID']}", "harmbench", ({"role": "user", "content": text},),
                              "harmbench", category=f"{r['FunctionalCategory']}/{r['SemanticCategory']}"))
    return prompts


def build_prompt_sets(splits: dict[str, list], max_adversarial: int = 500) -> dict[str, list[Prompt]]:
    """Every prompt set for a run whose data split is `splits` ({"train": [Pair], "dev": ..., "test": ...})."""
    seen = {conversation_root(p.context) for name in ("train", "dev") for p in splits[name]}
    mark = (lambda p: Prompt(p.id, p.set, p.messages, p.source, conversation_root(list(p.messages)) in seen,
                             p.category))
    study_file = embedded("embedded", "opt350m_study", "harmful_prompts.json")
    study = [mark(p) for p in load_prompt_file(study_file, "harmful", drop_trailing_assistant=True)]
    test_contexts = {json.dumps(p.context): p for p in sorted(splits["test"], key=lambda p: p.id)}
    study_texts = {json.dumps(list(p.messages)) for p in study}
    matching = [Prompt(f"harmful-test-{p.id}", "harmful", tuple(p.context), "split test")
                for key, p in test_contexts.items()
                if key not in study_texts
                and any(HARMFUL_FILTER.search(t["content"]) for t in p.context if t["role"] == "user")]
    adversarial = [Prompt(f"adversarial-{p.id}", "adversarial", tuple(p.context), "split test")
                   for p in list(test_contexts.values())[:max_adversarial]]
    return {
        "harmful": sorted(study + matching, key=lambda p: p.seen_in_training),  # held-out prompts first
        "helpful": load_prompt_file(embedded("embedded", "opt350m_study", "helpful_prompts.json"), "helpful",
                                    drop_trailing_assistant=True) + load_hhh_requests(),
        "adversarial": adversarial,
        "benign_lookalike": load_prompt_file(embedded("prompt_sets", "benign_lookalike.jsonl"), "benign_lookalike"),
        "advbench": load_advbench(),
        "xstest": load_xstest(),
        "harmbench": load_harmbench(),
    }
