"""The sha256 of stored and uploaded files, read in 1 MiB chunks (never whole into memory):
one helper for ingest, storage_check and backup/restore."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def sha256_stream(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_of(data: bytes | Path) -> str:
    """Of bytes held in memory, or of a file on disk."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    with Path(data).open("rb") as handle:
        return sha256_stream(handle)
