"""Reading weight files only after their sha256 has been checked (shared by every loader of shipped weights)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def verified_bytes(path: Path, expected_sha256: str, mismatch: Callable[[str], Exception]) -> bytes:
    """The bytes of ``path`` if their sha256 (hex) is ``expected_sha256``; otherwise raises ``mismatch(actual)``,
    so a corrupt or modified file is never parsed."""
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise mismatch(actual)
    return data
