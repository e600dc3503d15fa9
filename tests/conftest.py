"""Shared fixtures: small synthetic MURA copies, built once per test session."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

from mura_lib.synthetic import generate_synthetic_mura

REPO = Path(__file__).resolve().parents[1]

# The data's remembered content hashes (mura_lib.dataset.content_hash_dir): the session's own,
# for this process and every process it starts, not the user's cache folder.
os.environ["MURA_HASH_CACHE"] = tempfile.mkdtemp(prefix="mura-test-hashes-")
atexit.register(shutil.rmtree, os.environ["MURA_HASH_CACHE"], True)


def pytest_runtest_setup(item):
    """Tests marked ``jax`` (the JAX tier, `make test-jax`) need JAX: skipped where it is not
    installed, unless ``MURA_REQUIRE_JAX=1`` (`make test-jax`, CI), where its absence fails them."""
    if item.get_closest_marker("jax") is None or importlib.util.find_spec("jax") is not None:
        return
    if os.environ.get("MURA_REQUIRE_JAX") == "1":
        pytest.fail(
            "JAX is not installed, and MURA_REQUIRE_JAX=1 requires the JAX tier to run: "
            "pip install -e '.[jax]' into the project's environment (make installs it with its default EXTRAS)",
            pytrace=False,
        )
    pytest.skip("JAX is not installed (pip install -e '.[jax]'; make test-jax installs it)")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A read-only synthetic MURA-v1.1 copy (about 400 images of 64 px)."""
    return generate_synthetic_mura(
        tmp_path_factory.mktemp("synthetic"), scale=0.01, image_size=64, seed=0, progress=False
    )


@pytest.fixture
def mura_copy(synthetic_root, tmp_path) -> Path:
    """A private, writable copy of the synthetic dataset, for tests that damage it."""
    target = tmp_path / "MURA-v1.1"
    shutil.copytree(synthetic_root, target)
    return target


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """A copy of the project, built once on the smoke profile: (project folder, CLI result)."""
    from .test_build import copy_project, mura_thesis

    project = copy_project(tmp_path_factory.mktemp("book") / "thesis")
    result = mura_thesis(project, "build", "--profile", "smoke")
    return project, result


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    """The small synthetic copy, loaded (once per test module)."""
    from mura_lib.dataset import load_mura

    return load_mura(synthetic_root)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A preprocessing cache of the test module's own."""
    return tmp_path_factory.mktemp("cache")
