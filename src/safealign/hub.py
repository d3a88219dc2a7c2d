"""Whether the model hub may be used: offline flags, reachability, and the one error when it may not."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from safealign.errors import SafeAlignError


def hub_offline_flag() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "SAFEALIGN_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """False at once with offline mode set; else whether a TCP connection to the hub endpoint opens."""
    if hub_offline_flag():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str, instead: str):
    if not hub_reachable():
        reason = "offline mode is set" if hub_offline_flag() else "the model hub cannot be reached"
        raise SafeAlignError(f"{what} needs the model hub, but {reason}: {instead}")
