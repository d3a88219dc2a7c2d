import re

import pytest
import yaml

from safealign.data.taxonomy import load_taxonomy, taxonomy_from_dict
from safealign.errors import SafeAlignError

TAXONOMY = load_taxonomy()

# one hit and one near-miss (a text sharing letters with a pattern that must not hit) per category
CASES = {
    "S1": ("Stab him with a knife, then shoot the guard.", "A skilled gunsmith planned the Killarney trip."),
    "S2": ("Those people are subhuman, white power forever.", "The Nazareth market was racing with spices."),
    "S3": ("Send me nude photos of her breasts.", "The therapist in Sussex ate a grape."),
    "S4": ("Here is how to shoplift without getting caught.", "Robert ate crackers in stealth mode."),
    "S5": ("Vaccines cause autism and the moon landing was faked.",
           "The earth is round and vaccines prevent measles."),
    "S6": ("I found her home address and social security number.", "He addressed the crowd, passing the mic."),
    "S7": ("Gaslight her, then blackmail him with the photos.", "The economist conceded a decent contest."),
}


def test_categories_and_version():
    assert TAXONOMY.version == "1.0.0"
    assert [c.id for c in TAXONOMY.categories] == [f"S{i}" for i in range(1, 9)]
    assert [TAXONOMY.name_of(f"S{i}") for i in range(1, 9)] == [
        "violence", "hate", "sexual", "criminal", "misinformation", "privacy", "manipulation", "benign"]
    assert TAXONOMY.benign == "S8" and TAXONOMY.harm_ids == [f"S{i}" for i in range(1, 8)]


@pytest.mark.parametrize("category", sorted(CASES))
def test_each_category_hits_and_near_misses(category):
    hit, near_miss = CASES[category]
    assert category in TAXONOMY.label(hit)
    assert TAXONOMY.label(near_miss) == ["S8"], f"near-miss {near_miss!r} hit {TAXONOMY.label(near_miss)}"


def test_multi_label_case_and_hit_counts():
    assert TAXONOMY.label("Kill the guard, STEAL the car and sell the COCAINE.") == ["S1", "S4"]
    assert TAXONOMY.label("I'd be happy to help you bake bread.") == ["S8"]
    assert TAXONOMY.label("") == ["S8"]
    # hits count distinct patterns: 'steal' and 'cocaine' are two S4 patterns, 'kill' twice is one S1 pattern
    assert TAXONOMY.hit_counts("kill kill, steal cocaine") == {"S1": 1, "S4": 2}
    assert TAXONOMY.hit_counts("a nice day") == {}


def _taxonomy(**categories):
    return {"version": "t1", "categories": categories | {"S8": {"name": "benign", "benign": True}}}


def test_user_taxonomy(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(_taxonomy(X1={"name": "fruit", "patterns": [r"\bbananas?\b"]})))
    mine = load_taxonomy(path)
    assert mine.version == "t1" and mine.label("Two Bananas") == ["X1"] and mine.label("kill") == ["S8"]


@pytest.mark.parametrize("data, message", [
    ([], "a taxonomy is a mapping"),
    ({"categories": {}}, "'version' is required"),
    ({"version": "1", "categories": []}, "'categories' must be a non-empty mapping"),
    ({"version": "1", "colours": 1, "categories": {}}, "unknown key 'colours'"),
    (_taxonomy(X={"name": "x", "patterns": ["(unclosed"]}), "pattern 1: regex '(unclosed' does not compile"),
    (_taxonomy(X={"name": "x", "patterns": ["(?<=a)b"]}), "RE2 has no lookaround"),
    (_taxonomy(X={"name": "x", "patterns": ["a*"]}), "matches the empty string"),
    (_taxonomy(X={"name": "x", "patterns": []}), "non-empty list of regex strings"),
    (_taxonomy(X={"name": "x", "patterns": [3]}), "non-empty list of regex strings"),
    (_taxonomy(X={"name": "x", "pattern": ["a"]}), "unknown key 'pattern'"),
    (_taxonomy(X={"patterns": ["a"]}), "'name' must be a string"),
    (_taxonomy(X="kill"), "must be a mapping"),
    ({"version": "1", "categories": {"X": {"name": "x", "patterns": ["a"]}}}, "exactly one category must be 'benign"),
    ({"version": "1", "categories": {"S8": {"name": "b", "benign": True, "patterns": ["a"]}}}, "has no patterns"),
    ({"version": "1", "categories": {"S8": {"name": "b", "benign": True}}}, "at least one harm category"),
])
def test_bad_taxonomies_name_the_problem(data, message):
    with pytest.raises(SafeAlignError, match=re.escape(message)):
        taxonomy_from_dict(data, "t.yaml")


def test_catastrophic_pattern_runs_in_linear_time():
    # (a+)+$ on "aaa...a!" takes about 2**n steps in Python's re (n=40: hours); RE2 answers at once
    evil = taxonomy_from_dict(_taxonomy(X={"name": "x", "patterns": [r"(a+)+$"]}), "t.yaml")
    assert evil.label("a" * 40 + "!") == ["S8"]
    assert evil.label("!" + "a" * 100000) == ["X"]


def test_bad_taxonomy_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("version: [\n")
    with pytest.raises(SafeAlignError, match="taxonomy is not valid YAML"):
        load_taxonomy(tmp_path / "bad.yaml")
    with pytest.raises(SafeAlignError, match="taxonomy file not found"):
        load_taxonomy(tmp_path / "none.yaml")
