"""Hypothesis throws random bytes at every loader that reads user files: each either loads or raises one
SafeAlignError that names the file; none crashes with another exception."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safealign.audit import AuditConfig
from safealign.config import load_config
from safealign.data.prompts import load_prompt_file
from safealign.data.sources import load_pairs
from safealign.data.taxonomy import load_taxonomy
from safealign.errors import SafeAlignError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Random bytes, and text made of the characters that matter to each format.
BLOBS = st.one_of(st.binary(max_size=400),
                  st.text(alphabet=st.sampled_from(list('{}[]":,\n\\ -abcHumanAssistant:0129\xff#*!&|')),
                          max_size=300),
                  st.text(max_size=200))


def _load(loader, suffix: str, blob):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(blob if isinstance(blob, bytes) else blob.encode("utf-8", "surrogatepass"))
        try:
            loader(path)
        except SafeAlignError as error:
            assert str(path) in str(error) or path.name in str(error), str(error)
        except UnicodeEncodeError:
            pass  # a lone surrogate cannot be written as a file's text to begin with


@FUZZ
@given(BLOBS)
def test_fuzz_preference_files(blob):
    _load(lambda p: load_pairs(str(p)), ".jsonl", blob)
    _load(lambda p: load_pairs(str(p)), ".json", blob)


@FUZZ
@given(BLOBS)
def test_fuzz_prompt_files(blob):
    _load(lambda p: load_prompt_file(p, "mine"), ".jsonl", blob)
    _load(lambda p: load_prompt_file(p, "mine"), ".json", blob)


@FUZZ
@given(BLOBS)
def test_fuzz_taxonomy_files(blob):
    _load(lambda p: load_taxonomy(str(p)), ".yaml", blob)


@FUZZ
@given(BLOBS)
def test_fuzz_config_files(blob):
    _load(lambda p: load_config(AuditConfig, p), ".yaml", blob)
