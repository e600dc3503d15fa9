import hashlib

import pandas as pd
import pytest

from mura_lib.dataset import load_mura
from mura_lib.synthetic import MURA_STUDY_COUNTS, SyntheticSpec, generate_synthetic_mura


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    first = generate_synthetic_mura(tmp_path / "a", scale=0.003, image_size=48, seed=7, workers=1, progress=False)
    second = generate_synthetic_mura(tmp_path / "b", scale=0.003, image_size=48, seed=7, workers=2, progress=False)
    other = generate_synthetic_mura(tmp_path / "c", scale=0.003, image_size=48, seed=8, workers=2, progress=False)
    assert _digest(first) == _digest(second)
    assert _digest(first) != _digest(other)


def test_mirrors_mura_structure_at_scale(synthetic_root):
    studies = load_mura(synthetic_root).studies
    counts = studies.groupby(["split", "study_type", "label"]).size()
    for split, types in MURA_STUDY_COUNTS.items():
        for study_type, per_label in types.items():
            for label, count in enumerate(per_label):
                assert counts[(split, study_type, label)] == max(1, round(count * 0.01))
    # Patients with several studies, some of several types; views per study vary.
    per_patient = studies.groupby("patient").agg(studies=("study_path", "size"), types=("study_type", "nunique"))
    assert (per_patient["studies"] > 1).any() and (per_patient["types"] > 1).any()
    assert studies["views"].nunique() >= 3
    # Train and valid patients are distinct, as in MURA.
    split_of = studies.groupby("patient")["split"].nunique()
    assert (split_of == 1).all()


def test_existing_dataset_is_reused_or_protected(synthetic_root):
    assert generate_synthetic_mura(synthetic_root.parent, scale=0.01, image_size=64, seed=0, progress=False) == synthetic_root
    with pytest.raises(FileExistsError, match="not generated with this specification"):
        generate_synthetic_mura(synthetic_root.parent, scale=0.02, image_size=64, seed=0, progress=False)


def test_bad_specification_is_explained():
    with pytest.raises(ValueError, match="scale"):
        SyntheticSpec(scale=0)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticSpec(image_size=8)
