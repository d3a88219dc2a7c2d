"""Preference data in other schemas than HH-RLHF's, mapped onto SafeAlign's pairs (context, chosen, rejected).

SCHEMAS (the one table) maps a schema to its reader; HUB_DATASETS names the schema and the splits of each
hub dataset SafeAlign knows. `data.schema: auto` takes the hub dataset's schema, and HH-RLHF for a file.
A local file in any schema is read the same way (`data.source=FILE data.schema=pku_saferlhf`), which is how
the readers are tested and how a user without the hub uses a downloaded copy.

- **hh** (Anthropic/hh-rlhf, any data_dir: harmless-base, helpful-base, ...): `chosen` and `rejected`
  dialogues (data/hh_rlhf.py). helpful-base's preference is helpfulness: the reward model's data.
- **pku_saferlhf** (PKU-Alignment/PKU-SafeRLHF, Safe RLHF's own data): `prompt`, `response_0`,
  `response_1`, `is_response_0_safe`, `is_response_1_safe`, `better_response_id`, `safer_response_id`.
  `data.preference: safer` (default) makes the safer response the chosen one: the cost model's preference,
  as the harmless pairs of HH-RLHF; `better` makes the more helpful one chosen: the reward model's. Either
  way each response's human is-safe flag travels with the pair (`meta`) and becomes its safety label, the
  cost model's sign term, in place of the taxonomy's guess.
- **beavertails** (PKU-Alignment/BeaverTails): one response per row, `prompt`, `response`, `is_safe`
  (and `category`). A pair is a safe and an unsafe response to the same prompt (paired in file order, the
  safe one chosen); a prompt without both kinds gives no pair. Labels as above, from `is_safe`.

A row that does not fit its schema is one BadInputError naming the file, the row and the field.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator

from safealign.data.hh_rlhf import EMBEDDED, EMBEDDED_FILE, Pair, pair_id, parse_pair
from safealign.errors import BadInputError, SafeAlignError
from safealign.hub import require_hub

PREFERENCES = ("safer", "better")


def _field(record, path, line: int, name: str, kind: type, schema: str):
    if not isinstance(record, dict):
        raise BadInputError(path, line, f"expected a JSON object ({schema} row), got {type(record).__name__}")
    if name not in record:
        raise BadInputError(path, line, f"missing field '{name}' ({schema} rows have {', '.join(FIELDS[schema])})")
    value = record[name]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise BadInputError(path, line, f"field '{name}' must be {kind.__name__}, got {value!r:.40}")
    if kind is str and not value.strip():
        raise BadInputError(path, line, f"field '{name}' is empty")
    return value


def _pair(prompt: str, chosen: str, rejected: str, line: int, meta: dict) -> Pair:
    context = [{"role": "user", "content": prompt.strip()}]
    chosen, rejected = chosen.strip(), rejected.strip()
    return Pair(pair_id(context, chosen, rejected), context, chosen, rejected, source_line=line, meta=meta)


def _checked(records, read_row) -> Iterator:
    """read_row(record, path, line) for every record, or the BadInputError in its place."""
    for path, line, record in records:
        if isinstance(record, BadInputError):
            yield record
            continue
        try:
            yield read_row(record, path, line)
        except BadInputError as e:
            yield e


def _pku_row(record, path, line: int, preference: str) -> Pair:
    prompt = _field(record, path, line, "prompt", str, "pku_saferlhf")
    responses = [_field(record, path, line, f"response_{i}", str, "pku_saferlhf") for i in (0, 1)]
    safe = [_field(record, path, line, f"is_response_{i}_safe", bool, "pku_saferlhf") for i in (0, 1)]
    ids = {name: _field(record, path, line, name, int, "pku_saferlhf")
           for name in ("better_response_id", "safer_response_id")}
    for name, value in ids.items():
        if value not in (0, 1):
            raise BadInputError(path, line, f"field '{name}' must be 0 or 1, got {value}")
    chosen = ids["safer_response_id" if preference == "safer" else "better_response_id"]
    other = 1 - chosen
    return _pair(prompt, responses[chosen], responses[other], line,
                 {"chosen_safe": safe[chosen], "rejected_safe": safe[other],
                  "chosen_is_safer": chosen == ids["safer_response_id"],
                  "chosen_is_better": chosen == ids["better_response_id"]})


def read_pku_saferlhf(records, preference: str = "safer") -> Iterator:
    """PKU-SafeRLHF rows -> pairs (chosen: the safer, or the better, response) with both is-safe flags."""
    return _checked(records, lambda record, path, line: _pku_row(record, path, line, preference))


def _beavertails_row(record, path, line: int) -> tuple:
    return (line, _field(record, path, line, "prompt", str, "beavertails"),
            _field(record, path, line, "response", str, "beavertails"),
            _field(record, path, line, "is_safe", bool, "beavertails"))


def read_beavertails(records, preference: str = "safer") -> Iterator:
    """BeaverTails rows -> pairs of a safe (chosen) and an unsafe response to the same prompt."""
    waiting: dict[str, dict[bool, list]] = {}
    for item in _checked(records, _beavertails_row):
        if isinstance(item, BadInputError):
            yield item
            continue
        line, prompt, response, is_safe = item
        queues = waiting.setdefault(" ".join(prompt.split()), {True: [], False: []})
        queues[is_safe].append((line, prompt, response))
        if queues[True] and queues[False]:
            (line_safe, prompt, safe), (line_unsafe, _, unsafe) = queues[True].pop(0), queues[False].pop(0)
            yield _pair(prompt, safe, unsafe, min(line_safe, line_unsafe),
                        {"chosen_safe": True, "rejected_safe": False, "chosen_is_safer": True})


def read_hh(records, preference: str = "safer") -> Iterator:
    return _checked(records, parse_pair)


SCHEMAS = {"hh": read_hh, "pku_saferlhf": read_pku_saferlhf, "beavertails": read_beavertails}
FIELDS = {"pku_saferlhf": ("prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe",
                           "better_response_id", "safer_response_id"),
          "beavertails": ("prompt", "response", "is_safe")}
HUB_DATASETS = {  # hub id -> (schema, splits read)
    "Anthropic/hh-rlhf": ("hh", ("train", "test")),
    "PKU-Alignment/PKU-SafeRLHF": ("pku_saferlhf", ("train", "test")),
    "PKU-Alignment/BeaverTails": ("beavertails", ("30k_train", "30k_test")),
}


def schema_of(source: str, schema: str) -> str:
    if schema != "auto":
        if schema not in SCHEMAS:
            raise SafeAlignError(f"data.schema must be auto or one of {', '.join(SCHEMAS)}, got '{schema}'")
        return schema
    return HUB_DATASETS.get(source.partition(":")[0], ("hh",))[0]


@dataclass
class Loaded:
    pairs: list[Pair]
    bad: list[BadInputError]
    source: str          # what the user asked for
    files: list[str]     # the files read (for the manifest's hashes)


def embedded_path() -> Path:
    return Path(str(resources.files("safealign.data") / "embedded" / EMBEDDED_FILE))


def load_pairs(source: str, skip_bad: bool | None = None, max_pairs: int | None = None,
               progress=None, schema: str = "auto", preference: str = "safer") -> Loaded:
    """Read and parse every pair of `source` ('embedded', a hub id 'org/name:data_dir', or a local file) in
    its `schema` (data/sources.py: hh, pku_saferlhf, beavertails; auto: by hub id, else hh)."""
    schema = schema_of(source, schema)
    reader = SCHEMAS[schema]
    if skip_bad is None:
        skip_bad = source == EMBEDDED
    if source == EMBEDDED:
        path = embedded_path()
        records, files = _read_file(path), [str(path)]
    elif Path(source).exists():
        records, files = _read_file(Path(source)), [str(source)]
    elif _looks_like_hub_id(source):
        records, files = _read_hub(source, schema), []
    else:
        raise SafeAlignError(f"unknown source '{source}': expected 'embedded', a local .jsonl/.jsonl.gz/.json "
                             "file, or a hub dataset id such as 'Anthropic/hh-rlhf:harmless-base'")
    pairs, bad = [], []
    for item in reader(progress(records) if progress else records, preference):
        if isinstance(item, BadInputError):
            if not skip_bad:
                raise item
            bad.append(item)
        else:
            pairs.append(item)
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    if not pairs:
        raise SafeAlignError(f"{source}: no valid preference pairs found"
                             + (f" ({len(bad)} bad rows, first: {bad[0]})" if bad else ""))
    return Loaded(pairs, bad, source, files)


def _looks_like_hub_id(source: str) -> bool:
    return re.fullmatch(r"[\w.-]+/[\w.-]+(:[\w./-]+)?", source) is not None


def _read_file(path: Path) -> Iterator[tuple[str, int, object]]:
    """Yield (path, line, record); a row that cannot be decoded yields a BadInputError in its place."""
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return _read_jsonl(path)
    if name.endswith((".json", ".json.gz")):
        return _read_json_array(path)
    raise SafeAlignError(f"{path}: unknown file type (expected .jsonl, .jsonl.gz, .json or .json.gz)")


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


MAX_LINE_BYTES = 4 * 2**20  # an HH-RLHF row is a few KiB; a longer line is not a dialogue


def _bounded_lines(f):
    """(line number, bytes), or (line number, None) for a line over MAX_LINE_BYTES, read without holding it."""
    line_no = 0
    while raw := f.readline(MAX_LINE_BYTES + 1):
        line_no += 1
        if len(raw) > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(MAX_LINE_BYTES + 1)
            yield line_no, None
        else:
            yield line_no, raw


def _read_jsonl(path: Path):
    try:
        with _open_bytes(path) as f:
            for line_no, raw in _bounded_lines(f):
                if raw is None:
                    yield str(path), line_no, BadInputError(path, line_no,
                                                            f"line longer than {MAX_LINE_BYTES:,} bytes")
                    continue
                if not raw.strip():
                    continue
                yield str(path), line_no, _decode_json_line(raw, path, line_no)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a truncated .gz is an EOFError
        raise BadInputError(path, None, f"cannot read file ({e})") from None


def _decode_json_line(raw: bytes, path: Path, line_no: int):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadInputError(path, line_no, f"invalid UTF-8 (byte {e.start} of the line)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return BadInputError(path, line_no, f"malformed JSON ({e.msg} at column {e.colno})")


def _read_json_array(path: Path):
    try:
        with _open_bytes(path) as f:
            blob = f.read()
    except (OSError, EOFError) as e:
        raise BadInputError(path, None, f"cannot read file ({e})") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        line = blob[: e.start].count(b"\n") + 1
        raise BadInputError(path, line, "invalid UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInputError(path, e.lineno, f"malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise BadInputError(path, 1, "a .json source must hold a list of {'chosen', 'rejected'} objects")
    for index, record in enumerate(data, start=1):
        yield f"{path} record", index, record


def _read_hub(source: str, schema: str = "hh"):
    name, _, data_dir = source.partition(":")
    require_hub(f"dataset '{source}'", f"pass data.source=embedded, or a local .jsonl file in the {schema} schema "
                                       f"(data.source=FILE data.schema={schema})")
    import datasets

    for split in HUB_DATASETS.get(name, ("hh", ("train", "test")))[1]:
        rows = datasets.load_dataset(name, data_dir=data_dir or None, split=split)
        for index, record in enumerate(rows, start=1):
            yield f"{source}[{split}]", index, record
