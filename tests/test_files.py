"""Small file helpers: atomic writes and the short hash that names cached results."""

import hashlib
import json
from pathlib import Path

from mura_lib.files import atomic_write_text, short_hash


def test_short_hash_is_the_sha256_of_sorted_json_or_of_bytes():
    value = {"b": [1, 2], "a": "x"}
    expected = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
    assert short_hash(value) == expected == short_hash({"a": "x", "b": [1, 2]})
    assert short_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()[:16]
    assert short_hash({"path": Path("/x")}) == short_hash({"path": "/x"})
    assert short_hash(value) != short_hash({"a": "x", "b": [2, 1]})


def test_atomic_write_leaves_only_the_finished_file(tmp_path):
    target = tmp_path / "deep" / "file.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["file.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
