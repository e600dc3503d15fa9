from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mura_lib.dataset import MuraFormatError, load_mura, manifest_hash, split_by_patient


def test_reads_synthetic_copy_into_one_table(synthetic_root):
    dataset = load_mura(synthetic_root)
    images = dataset.images
    assert list(images.columns[:3]) == ["path", "relpath", "split"]
    assert set(images["split"]) == {"train", "valid"}
    assert images["relpath"].is_unique
    # Every label agrees with its study folder's suffix.
    assert ((images["label"] == 1) == images["study"].str.endswith("positive")).all()
    # Each study's views are numbered 1..n without gaps.
    views = images.groupby("study_path")["view"].agg(["min", "max", "size"])
    assert (views["min"] == 1).all() and (views["max"] == views["size"]).all()


def test_accepts_folder_above_dataset_and_env_var(synthetic_root, monkeypatch):
    assert load_mura(synthetic_root.parent).root == synthetic_root
    monkeypatch.setenv("MURA_DATA", str(synthetic_root))
    assert load_mura(None).root == synthetic_root


def test_sidecar_files_are_ignored_and_counted(synthetic_root):
    dataset = load_mura(synthetic_root)
    sidecars = dataset.exclusions.loc[dataset.exclusions["reason"].str.contains("sidecar")]
    on_disk = list(synthetic_root.rglob("._*"))
    assert len(on_disk) >= 1
    assert len(sidecars) == len(on_disk)
    assert not dataset.images["relpath"].str.contains("/._").any()


def test_header_row_and_crlf_are_tolerated(mura_copy):
    reference = load_mura(mura_copy).images
    for name, header in (("train_image_paths.csv", "Img_Path"), ("valid_labeled_studies.csv", "path,label")):
        path = mura_copy / name
        path.write_bytes((header + "\r\n" + path.read_text().replace("\n", "\r\n")).encode())
    dataset = load_mura(mura_copy)
    pd.testing.assert_frame_equal(dataset.images, reference)
    assert any("header row" in q for q in dataset.csv_quirks)
    assert any("CRLF" in q for q in dataset.csv_quirks)


def test_not_a_mura_folder_says_what_was_expected(tmp_path):
    with pytest.raises(MuraFormatError, match="not a MURA-v1.1 folder.*train_image_paths.csv"):
        load_mura(tmp_path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(MuraFormatError, match="does not exist"):
        load_mura(tmp_path / "nowhere")


def test_withdrawn_v10_layout_is_recognised(tmp_path):
    (tmp_path / "train.csv").write_text("MURA-v1.0/train/XR_HAND/patient1/study1_positive/image1.png,1\n")
    (tmp_path / "valid.csv").write_text("")
    with pytest.raises(MuraFormatError, match="v1.0"):
        load_mura(tmp_path)


def test_missing_images_are_listed_or_excluded(mura_copy):
    victim = load_mura(mura_copy).images.query("split == 'train'")
    victim = victim.loc[victim.groupby("study_path")["view"].transform("size") > 1].iloc[0]
    Path(victim["path"]).unlink()
    with pytest.raises(MuraFormatError, match=r"missing on disk \(1\)") as error:
        load_mura(mura_copy)
    assert victim["relpath"] in str(error.value)
    dataset = load_mura(mura_copy, missing="exclude")
    assert victim["relpath"] not in set(dataset.images["relpath"])
    assert (dataset.exclusions["relpath"] == victim["relpath"]).sum() == 1


def test_label_contradicting_folder_is_an_error(mura_copy):
    path = mura_copy / "train_labeled_studies.csv"
    lines = path.read_text().splitlines()
    study, label = lines[0].rsplit(",", 1)
    lines[0] = f"{study},{1 - int(label)}"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MuraFormatError, match="contradicts the folder name"):
        load_mura(mura_copy)


def test_empty_study_is_an_error(mura_copy):
    images = mura_copy / "train_image_paths.csv"
    lines = images.read_text().splitlines()
    study = lines[0].rsplit("/", 1)[0]
    images.write_text("\n".join(l for l in lines if not l.startswith(study + "/")) + "\n")
    for png in (mura_copy.parent / study).glob("*.png"):
        png.unlink()
    with pytest.raises(MuraFormatError, match="without any image"):
        load_mura(mura_copy)


def test_unlisted_files_are_counted(mura_copy):
    study = next((mura_copy / "train").glob("XR_*/patient*/study*"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(study / "image99.png")
    dataset = load_mura(mura_copy)
    assert dataset.exclusion_counts()["on disk but not listed in the CSV"] == 1


def test_bad_missing_option():
    with pytest.raises(ValueError, match="missing must be"):
        load_mura("whatever", missing="ignore")


def test_manifest_changes_with_the_data(mura_copy):
    before = manifest_hash(mura_copy)
    assert manifest_hash(mura_copy) == before
    png = next(mura_copy.rglob("image1.png"))
    png.write_bytes(png.read_bytes() + b"\0")
    assert manifest_hash(mura_copy) != before


def test_patient_split_keeps_patients_apart(synthetic_root):
    images = load_mura(synthetic_root).images
    subset = split_by_patient(images, validation_fraction=0.2, seed=3)
    assert set(subset) == {"train", "validation", "test"}
    assert (subset[images["split"] == "valid"] == "test").all()
    patients = images.assign(subset=subset).groupby("patient")["subset"].nunique()
    assert (patients == 1).all()
    # The synthetic data has patients with studies of several types, so the check has teeth.
    assert (images.groupby("patient")["study_type"].nunique() > 1).any()
    # Reproducible from the seed, and another seed gives another split.
    assert subset.equals(split_by_patient(images, validation_fraction=0.2, seed=3))
    assert not subset.equals(split_by_patient(images, validation_fraction=0.2, seed=4))
    share = (subset == "validation").sum() / (images["split"] == "train").sum()
    assert 0.1 < share < 0.3


def test_patient_split_rejects_bad_fraction(synthetic_root):
    images = load_mura(synthetic_root).images
    with pytest.raises(ValueError, match="validation_fraction"):
        split_by_patient(images, validation_fraction=0.7)
