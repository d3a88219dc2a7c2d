"""MiniLM sentence embeddings for the judges, cached per machine under the SafeAlign cache."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from safealign.io import write_bytes_atomic
from safealign.models import cache_dir, resolve

EMBED_TOKENS = 256  # MiniLM was trained on 256-token texts


_ENCODERS: dict = {}


def embed(texts: list[str], encoder: str = "minilm", cache: bool = False) -> np.ndarray:
    """MiniLM sentence embeddings (N, 384), normalised, of at most EMBED_TOKENS tokens each. With `cache`,
    kept under the SafeAlign cache keyed by the encoder and the texts, so the judge's 7,700 training and
    check responses are embedded once per machine (about 3 minutes on 2 cores)."""
    folder = resolve(encoder)
    key = hashlib.sha256(json.dumps([Path(folder).name, EMBED_TOKENS, texts]).encode()).hexdigest()[:24]
    path = cache_dir() / "embeddings" / f"{key}.npy"
    if cache and path.is_file():
        return np.load(path, allow_pickle=False)
    if folder not in _ENCODERS:
        from sentence_transformers import SentenceTransformer

        _ENCODERS[folder] = SentenceTransformer(folder, device="cpu")
        _ENCODERS[folder].max_seq_length = EMBED_TOKENS
    vectors = _ENCODERS[folder].encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    if cache:
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        write_bytes_atomic(path, buffer.getvalue())
    return vectors
