"""A build checked against another build of the same commit under other numerics: a stand-in
for another machine, which retrains every run to different weights.  Its verdicts must not flip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from .test_build import CLI, copy_project

pytestmark = pytest.mark.slow


def test_a_build_under_other_numerics_retrains_every_run_and_flips_no_verdict(smoke_book, tmp_path):
    from mura_thesis.manifest import load_manifest

    project, _ = smoke_book
    first = load_manifest(project)
    threads = first["environment"]["numerics"]["threads"]
    other = 1 if threads != 1 else 2
    twin = copy_project(tmp_path / "thesis")
    # The same generated data (its bytes do not depend on the numerics); the runs start afresh.
    shutil.copytree(project / "data", twin / "data")
    environment = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "MURA_THREADS": str(other)}
    built = subprocess.run([*CLI, "build", "--profile", "smoke"], cwd=twin, capture_output=True, text=True,
                           env=environment)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    second = load_manifest(twin)
    assert second["environment"]["numerics"]["threads"] == other
    # Every run was trained again, under keys of its own: the numerics are part of each key.
    assert first["runs"].keys() == second["runs"].keys()
    assert not set(first["runs"].values()) & set(second["runs"].values())

    compared = subprocess.run([*CLI, "compare", str(project), str(twin), "--json"], cwd=twin, capture_output=True,
                              text=True, env=environment)  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr  # 1: a verdict flipped
    counts = json.loads(compared.stdout)["counts"]
    assert counts["verdicts"] == 2 * len(first["comparisons"]) > 0
    assert counts["flips"] == 0
    assert counts["agree"] + counts["one_undetermined"] == counts["verdicts"]
