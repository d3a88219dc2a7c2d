r"""Harm taxonomy: a versioned YAML of regex patterns per category; labels a response with every category hit.

`load_taxonomy("default")` reads the YAML shipped in the package; any other value is a path to a user's
YAML of the same schema. Every pattern is compiled before any text is labelled; a text that hits no
category gets the benign one.

Patterns run on RE2 (google-re2), matched case-insensitively, all of them at once as one `RE2::Set`: one
linear-time pass per text, whatever the number of patterns (about 100x Python's `re` here, see
benchmarks/), and no pattern can backtrack catastrophically. RE2 is Python's regex syntax without
lookaround and backreferences; `\b` and `\w` are ASCII. A pattern RE2 cannot compile is refused with
its reason. "Hits" of a category are the number of its distinct patterns that match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import re2

from safealign.errors import SafeAlignError
from safealign.io import read_yaml

DEFAULT = "default"
DEFAULT_FILE = "harm_taxonomy_v1.yaml"


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True
    options.log_errors = False
    return options


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    description: str
    patterns: tuple[str, ...]  # empty for the benign category


@dataclass(frozen=True)
class Taxonomy:
    version: str
    name: str
    path: str
    categories: tuple[Category, ...]
    benign: str  # id of the category given to a text that hits no other
    _set: re2.Set = field(repr=False, compare=False)
    _category_of_pattern: tuple[int, ...] = field(repr=False, compare=False)  # pattern index -> category index

    @property
    def harm_ids(self) -> list[str]:
        return [c.id for c in self.categories if c.patterns]

    def matched_patterns(self, text: str) -> list[int]:
        """Indices (over all harm patterns, in file order) of every pattern that matches `text`."""
        return self._set.Match(text) or []

    def hit_counts(self, text: str) -> dict[str, int]:
        """Number of distinct patterns that match, per harm category (categories with none left out)."""
        counts: dict[str, int] = {}
        for index in self.matched_patterns(text):
            category = self.categories[self._category_of_pattern[index]].id
            counts[category] = counts.get(category, 0) + 1
        return counts

    def label(self, text: str) -> list[str]:
        """Every harm category whose patterns hit `text`, in taxonomy order; [benign] if none does."""
        hit = sorted({self._category_of_pattern[i] for i in self.matched_patterns(text)})
        return [self.categories[i].id for i in hit] or [self.benign]

    def name_of(self, category_id: str) -> str:
        return next(c.name for c in self.categories if c.id == category_id)


def load_taxonomy(source: str | Path = DEFAULT) -> Taxonomy:
    if str(source) == DEFAULT:
        path = Path(str(resources.files("safealign.data") / "taxonomy" / DEFAULT_FILE))
    else:
        path = Path(source)
    data = read_yaml(path, "taxonomy")
    return taxonomy_from_dict(data, str(path))


def taxonomy_from_dict(data, where: str) -> Taxonomy:
    if not isinstance(data, dict):
        raise SafeAlignError(f"{where}: a taxonomy is a mapping with 'version' and 'categories'")
    unknown = set(data) - {"version", "name", "categories", "description"}
    if unknown:
        raise SafeAlignError(f"{where}: unknown key '{sorted(unknown)[0]}' (known: version, name, categories)")
    version = data.get("version")
    if not isinstance(version, (str, int, float)) or not str(version).strip():
        raise SafeAlignError(f"{where}: 'version' is required (labels record which taxonomy made them)")
    raw = data.get("categories")
    if not isinstance(raw, dict) or not raw:
        raise SafeAlignError(f"{where}: 'categories' must be a non-empty mapping of id -> category")
    categories = tuple(_category(str(cid), spec, where) for cid, spec in raw.items())
    benign = [c.id for c in categories if not c.patterns]
    if len(benign) != 1:
        raise SafeAlignError(f"{where}: exactly one category must be 'benign: true' with no patterns "
                             f"(found {len(benign)})")
    if len(categories) < 2:
        raise SafeAlignError(f"{where}: needs at least one harm category beside the benign one")
    pattern_set, owners = re2.Set.SearchSet(_re2_options()), []
    for index, category in enumerate(categories):
        for pattern in category.patterns:
            pattern_set.Add(pattern)
            owners.append(index)
    pattern_set.Compile()
    return Taxonomy(str(version), str(data.get("name", "taxonomy")), where, categories, benign[0],
                    pattern_set, tuple(owners))


def _category(cid: str, spec, where: str) -> Category:
    here = f"{where}: category {cid}"
    if not isinstance(spec, dict):
        raise SafeAlignError(f"{here}: must be a mapping with 'name' and 'patterns' (or 'benign: true')")
    unknown = set(spec) - {"name", "description", "patterns", "benign"}
    if unknown:
        raise SafeAlignError(f"{here}: unknown key '{sorted(unknown)[0]}'")
    if not isinstance(spec.get("name"), str):
        raise SafeAlignError(f"{here}: 'name' must be a string")
    is_benign = spec.get("benign", False)
    patterns = spec.get("patterns") or []
    if is_benign:
        if patterns:
            raise SafeAlignError(f"{here}: the benign category has no patterns (it means 'none hit')")
        return Category(cid, spec["name"], str(spec.get("description", "")), ())
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise SafeAlignError(f"{here}: 'patterns' must be a non-empty list of regex strings")
    for i, pattern in enumerate(patterns, start=1):
        _check_pattern(pattern, f"{here} pattern {i}")
    return Category(cid, spec["name"], str(spec.get("description", "")), tuple(patterns))


def _check_pattern(pattern: str, here: str):
    try:
        compiled = re2.compile(pattern, _re2_options())
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise SafeAlignError(f"{here}: regex {pattern!r} does not compile under RE2 ({reason}); "
                             "RE2 has no lookaround or backreferences") from None
    if compiled.search(""):
        raise SafeAlignError(f"{here}: regex {pattern!r} matches the empty string, so it would hit every text")
