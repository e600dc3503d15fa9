"""Writing files so that a crash never leaves a half-written one (write beside, then rename), and
checksums of what was written, so that a file changed or damaged afterwards is noticed."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # readable by the group and others, whatever the umask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (fsynced, then renamed over it), readable by all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)  # mkstemp creates files readable by their owner only
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def short_hash(value) -> str:
    """16 hex characters of the SHA-256 of ``value``: bytes as they are, anything else as its JSON
    with sorted keys (values JSON cannot write, such as paths, as their text).  The key of a
    cached result: a comparison, a redrawn image set, a chapter's inputs."""
    data = value if isinstance(value, bytes) else json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


CHUNK = 1 << 20


def new_digest():
    """The checksum every stored file is given: BLAKE2b of 16 bytes (standard library, and faster
    than SHA-256 on a CPU)."""
    return hashlib.blake2b(digest_size=16)


def file_digest(path: str | os.PathLike) -> str:
    """The checksum of a file's bytes (32 hex characters), read in 1 MiB chunks."""
    digest = new_digest()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_digest(data) -> str:
    """The checksum of bytes (or of a contiguous array's buffer), as :func:`file_digest` gives it."""
    digest = new_digest()
    digest.update(data)
    return digest.hexdigest()
