"""HH-RLHF preference pairs: read a source, parse each dialogue into turns, build (context, chosen, rejected).

A dialogue is `\\n\\nHuman: ...\\n\\nAssistant: ...` repeated. The context is every turn before the last
assistant turn; chosen and rejected are the last assistant turns of the two dialogues, which must share
that context. A bad row raises `BadInputError` naming file, line and problem, or, with `skip_bad`, is set
aside with the same message so the caller can report it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from safealign.errors import BadInputError

_TURN_TAG = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
ROLES = {"Human": "user", "Assistant": "assistant"}
EMBEDDED = "embedded"
EMBEDDED_FILE = "hh_rlhf_harmless_base_test.jsonl.gz"


@dataclass
class Pair:
    id: str
    context: list[dict]  # [{"role": "user"|"assistant", "content": str}, ...]
    chosen: str
    rejected: str
    source_line: int = 0
    meta: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        return {"id": self.id, "context": self.context, "chosen": self.chosen, "rejected": self.rejected,
                "source_line": self.source_line} | ({"meta": self.meta} if self.meta else {})

    @classmethod
    def from_row(cls, row: dict) -> "Pair":
        return cls(row["id"], row["context"], row["chosen"], row["rejected"], row.get("source_line", 0),
                   row.get("meta") or {})


def parse_dialogue(text: str) -> list[dict]:
    """Split an HH-RLHF dialogue into turns; raises ValueError if it has no `Human:`/`Assistant:` tag."""
    parts = _TURN_TAG.split(text)
    if len(parts) < 3:
        raise ValueError("no 'Human:' or 'Assistant:' turn found")
    if parts[0].strip():
        raise ValueError(f"text before the first turn tag: {parts[0][:40]!r}")
    return [{"role": ROLES[tag], "content": body.strip()} for tag, body in zip(parts[1::2], parts[2::2])]


def split_last_assistant(turns: list[dict]) -> tuple[list[dict], str]:
    """(context, response): the turns before the last assistant turn, and that turn's text."""
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last is None:
        raise ValueError("dialogue has no assistant turn")
    if last != len(turns) - 1:
        raise ValueError("dialogue ends with a human turn after the last assistant turn")
    return turns[:last], turns[last]["content"]


def context_text(context: list[dict]) -> str:
    """The context back in HH-RLHF form, e.g. for models that read raw text."""
    tags = {"user": "Human", "assistant": "Assistant"}
    return "".join(f"\n\n{tags[t['role']]}: {t['content']}" for t in context).lstrip("\n")


def pair_id(context: list[dict], chosen: str, rejected: str) -> str:
    blob = json.dumps([context, chosen, rejected], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def parse_pair(record, path, line: int) -> Pair:
    """One HH-RLHF record -> Pair, or BadInputError naming `path` and `line`."""
    if not isinstance(record, dict):
        raise BadInputError(path, line, f"expected a JSON object, got {type(record).__name__}")
    for key in ("chosen", "rejected"):
        if key not in record:
            raise BadInputError(path, line, f"missing field '{key}' (HH-RLHF rows have 'chosen' and 'rejected')")
        if not isinstance(record[key], str):
            raise BadInputError(path, line, f"field '{key}' must be a string, got {type(record[key]).__name__}")
    parsed = {}
    for key in ("chosen", "rejected"):
        try:
            parsed[key] = split_last_assistant(parse_dialogue(record[key]))
        except ValueError as e:
            raise BadInputError(path, line, f"'{key}': {e}") from None
        if not parsed[key][1]:
            raise BadInputError(path, line, f"'{key}': empty assistant response")
    (context, chosen), (other_context, rejected) = parsed["chosen"], parsed["rejected"]
    if context != other_context:
        raise BadInputError(path, line, "'chosen' and 'rejected' do not share the same context "
                                        f"(they differ from turn {_first_difference(context, other_context) + 1})")
    if not any(t["role"] == "user" for t in context):
        raise BadInputError(path, line, "context has no human turn")
    return Pair(pair_id(context, chosen, rejected), context, chosen, rejected, source_line=line)


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# --------------------------------------------------------------------------- sources
























