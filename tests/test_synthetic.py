import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mura_lib.dataset import load_mura
from mura_lib.synthetic import (
    FINDINGS,
    MURA_PATIENTS,
    MURA_STUDY_COUNTS,
    OUTSIDE_IMPORTS,
    TRUTH_FILENAME,
    SyntheticSpec,
    generate_synthetic_mura,
    generator,
    generator_hash,
    image_truth,
    plan_images,
    plan_studies,
    render_images,
    render_without_markers,
    study_truth,
)
from mura_thesis import imports as import_graph
from mura_thesis.cli import main as cli_main
from mura_thesis.profiles import Profile, resolve_data


def _digest(root, pattern="*"):
    digest = hashlib.sha256()
    for path in sorted(root.glob(pattern)):
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
    assert (
        generate_synthetic_mura(synthetic_root.parent, scale=0.01, image_size=64, seed=0, progress=False)
        == synthetic_root
    )
    with pytest.raises(FileExistsError, match="not generated with this specification"):
        generate_synthetic_mura(synthetic_root.parent, scale=0.02, image_size=64, seed=0, progress=False)


def test_bad_specification_is_explained():
    with pytest.raises(ValueError, match="scale"):
        SyntheticSpec(scale=0)
    with pytest.raises(ValueError, match="image_size"):
        SyntheticSpec(image_size=8)
    with pytest.raises(ValueError, match="valid_scale"):
        SyntheticSpec(valid_scale=0)


# --- the valid split's own scale -------------------------------------------------------------


def test_valid_scale_sizes_the_test_split_and_leaves_train_byte_identical(tmp_path):
    same = generate_synthetic_mura(tmp_path / "a", scale=0.003, image_size=32, workers=1, progress=False)
    larger = generate_synthetic_mura(
        tmp_path / "b", scale=0.003, valid_scale=0.01, image_size=32, workers=1, progress=False
    )
    # The train split, images, sidecar files and CSV files, is the same byte for byte.
    assert _digest(same, "train/**/*") == _digest(larger, "train/**/*")
    for name in ("train_image_paths.csv", "train_labeled_studies.csv"):
        assert (same / name).read_bytes() == (larger / name).read_bytes()
    assert _digest(same, "valid/**/*") != _digest(larger, "valid/**/*")
    # The valid split has the studies and patients of its own scale, in MURA's layout.
    studies = load_mura(larger).studies
    valid = studies.loc[studies["split"] == "valid"]
    counts = valid.groupby(["study_type", "label"]).size()
    for study_type, per_label in MURA_STUDY_COUNTS["valid"].items():
        for label, count in enumerate(per_label):
            assert counts[(study_type, label)] == max(1, round(count * 0.01))
    assert valid["patient"].nunique() == round(MURA_PATIENTS["valid"] * 0.01)
    assert not set(valid["patient"]) & set(studies.loc[studies["split"] == "train", "patient"])
    assert json.loads((larger / "SYNTHETIC.json").read_text())["valid_scale"] == 0.01
    assert json.loads((same / "SYNTHETIC.json").read_text())["valid_scale"] is None
    # Another valid_scale is another dataset: not silently reused.
    with pytest.raises(FileExistsError, match="not generated with this specification"):
        generate_synthetic_mura(tmp_path / "b", scale=0.003, valid_scale=0.02, image_size=32, workers=1, progress=False)


def test_demo_train_split_is_planned_the_same_whatever_the_valid_scale():
    """Every train image's drawing parameters (hence its bytes) at the demo's scale."""
    plans = []
    for valid_scale in (None, 0.75):
        spec = SyntheticSpec(scale=0.05, valid_scale=valid_scale)
        images = plan_images(spec, plan_studies(spec))
        plans.append(images.loc[images["relpath"].str.startswith("train/")].reset_index(drop=True))
    pd.testing.assert_frame_equal(plans[0], plans[1])
    assert len(plans[0]) > 1000


def test_valid_scale_reaches_the_cli_and_the_build(tmp_path):
    arguments = ["--scale", "0.003", "--valid-scale", "0.005", "--image-size", "32", "--workers", "1"]
    assert cli_main(["synthesize", str(tmp_path / "cli"), *arguments]) == 0
    assert json.loads((tmp_path / "cli" / "MURA-v1.1" / "SYNTHETIC.json").read_text())["valid_scale"] == 0.005
    data = {"source": "synthetic", "scale": 0.003, "valid_scale": 0.005, "image_size": 32}
    profile = Profile(name="tiny", description="", data=data)
    source, root = resolve_data(tmp_path, profile, progress=False)
    assert source == "synthetic" and "valid_scale0.005" in str(root)
    assert json.loads((root / "SYNTHETIC.json").read_text())["valid_scale"] == 0.005


# --- ground truth ----------------------------------------------------------------------------


def test_image_truth_covers_every_image_consistently(synthetic_root):
    images = load_mura(synthetic_root).images
    truth = image_truth(synthetic_root)
    assert sorted(truth["relpath"]) == sorted(images["relpath"])
    merged = images.merge(truth, on="relpath", suffixes=("", "_truth"))
    assert (merged["label"] == merged["label_truth"]).all() and (merged["view"] == merged["view_truth"]).all()
    shown = merged["finding"] != ""
    assert set(merged.loc[shown, "finding"]) == set(FINDINGS)
    assert (merged.loc[shown, "label"] == 1).all()
    assert merged.loc[shown, "conspicuity"].between(0, 1).all() and merged.loc[~shown, "conspicuity"].isna().all()
    assert (merged["hardware"] == (merged["finding"] == "hardware")).all()
    assert (merged["cast"] == (merged["finding"] == "cast")).all()
    # Marker boxes lie in the stored image; images without a marker have none.
    boxes = merged[["marker_x0", "marker_y0", "marker_x1", "marker_y1"]]
    assert boxes.loc[~merged["marker"]].isna().all().all() and boxes.loc[merged["marker"]].notna().all().all()
    assert 0.5 < merged["marker"].mean() < 1.0
    for row in merged.loc[merged["marker"]].head(20).itertuples():
        with Image.open(row.path) as handle:
            width, height = handle.size
        assert 0 <= row.marker_x0 < row.marker_x1 <= width and 0 <= row.marker_y0 < row.marker_y1 <= height
    # Every view that shows a finding has its box (degenerative change with no joint in the field
    # aside), in pixels of the stored image and as fractions of its sides; other views have none.
    boxes = merged[["finding_x0", "finding_y0", "finding_x1", "finding_y1"]]
    fractions = merged[["finding_left", "finding_top", "finding_right", "finding_bottom"]]
    assert boxes.loc[~shown].isna().all().all() and fractions.loc[~shown].isna().all().all()
    boxed = boxes.notna().all(axis=1)
    assert boxed[shown & (merged["finding"] != "degenerative")].all() and boxed[shown].mean() > 0.95
    assert (merged.loc[boxed, "finding_x0"] < merged.loc[boxed, "finding_x1"]).all()
    assert (merged.loc[boxed, "finding_y0"] < merged.loc[boxed, "finding_y1"]).all()
    assert fractions.loc[boxed].ge(0).all().all() and fractions.loc[boxed].le(1).all().all()
    for row in merged.loc[boxed].head(20).itertuples():
        with Image.open(row.path) as handle:
            assert handle.size == (row.width, row.height)
        assert row.finding_right == pytest.approx(row.finding_x1 / row.width)
        assert row.finding_bottom == pytest.approx(row.finding_y1 / row.height)


def test_study_truth_has_one_row_per_study(synthetic_root, mura_copy):
    studies = load_mura(synthetic_root).studies.set_index("study_path")
    truth = study_truth(synthetic_root).set_index("study_path")
    assert sorted(truth.index) == sorted(studies.index)
    assert (truth["label"] == studies.loc[truth.index, "label"]).all()
    assert (truth["views"] == studies.loc[truth.index, "views"]).all()
    # Every abnormal study shows its finding in some view; normal studies show none.
    assert truth.loc[truth["label"] == 1, "finding"].isin(FINDINGS).all()
    assert (truth.loc[truth["label"] == 0, "finding"] == "").all()
    per_image = image_truth(synthetic_root)
    per_image["study_path"] = per_image["relpath"].str.rsplit("/", n=1).str[0]
    best = per_image.groupby("study_path")["conspicuity"].max()
    pd.testing.assert_series_equal(truth["conspicuity"], best.loc[truth.index], check_names=False)
    assert (truth["marker"] == (truth["marker_views"] > 0)).all()
    # Real MURA has no truth file.
    (mura_copy / TRUTH_FILENAME).unlink()
    assert study_truth(mura_copy) is None and image_truth(mura_copy) is None


# --- counterfactual images -------------------------------------------------------------------


def _stored(root, relpath):
    with Image.open(root / relpath) as handle:
        return np.asarray(handle.convert("L"))


def test_rendering_again_reproduces_the_stored_pixels_and_markers_come_off_in_their_box(synthetic_root):
    truth = image_truth(synthetic_root)
    marked = truth.loc[truth["marker"]].head(12)
    unmarked = truth.loc[~truth["marker"]].head(6)
    rgb = truth.loc[truth["rgb"]].head(2)
    assert len(marked) == 12 and len(unmarked) == 6 and len(rgb) >= 1
    relpaths = list(pd.concat([marked, unmarked, rgb])["relpath"].unique())
    again = render_images(synthetic_root, relpaths)
    bare = render_without_markers(synthetic_root, relpaths)
    for relpath in relpaths:
        assert np.array_equal(again[relpath], _stored(synthetic_root, relpath)), relpath
        assert bare[relpath].dtype == np.uint8 and bare[relpath].shape == again[relpath].shape
    for row in unmarked.itertuples():
        assert np.array_equal(bare[row.relpath], again[row.relpath]), row.relpath
    for row in marked.itertuples():
        changed = bare[row.relpath] != again[row.relpath]
        box = (slice(row.marker_y0, row.marker_y1), slice(row.marker_x0, row.marker_x1))
        assert changed[box].any(), row.relpath
        changed[box] = False
        assert not changed.any(), row.relpath
    # Another size on request; unknown images and real MURA are explained.
    assert max(render_without_markers(synthetic_root, relpaths[:1], image_size=48)[relpaths[0]].shape) == 48
    with pytest.raises(KeyError, match="lists no image"):
        render_images(synthetic_root, ["train/XR_HAND/patient99999/study1_negative/image1.png"])


def test_rendering_needs_a_synthetic_dataset(mura_copy):
    (mura_copy / TRUTH_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match="synthetic_truth.csv"):
        render_without_markers(mura_copy, ["train/XR_HAND/x/image1.png"])


# --- the generator hash ----------------------------------------------------------------------


def _reached(start: set[str]) -> set[str]:
    """``start`` and every mura_lib module that importing them runs, transitively."""
    edges = import_graph.graph(parents=True)
    return set(start).union(*(import_graph.reachable(edges, name) for name in start))


def _unhashed(modules: set[str]) -> set[str]:
    """The modules among ``modules`` whose file :func:`generator_hash` does not read."""
    files = import_graph.modules()
    return {name for name in modules if files[name].parent != generator.PACKAGE_DIR}


def test_every_module_the_generator_reaches_is_hashed_or_explained():
    package = {
        "mura_lib.synthetic" if path.stem == "__init__" else f"mura_lib.synthetic.{path.stem}"
        for path in generator.PACKAGE_DIR.glob("*.py")
    }
    assert {"mura_lib.synthetic.generator", "mura_lib.synthetic.radiograph", "mura_lib.synthetic.findings"} <= package
    unhashed = _unhashed(_reached(package | {"mura_lib"}))
    unexplained = sorted(unhashed - set(OUTSIDE_IMPORTS))
    assert not unexplained, (
        f"mura_lib/synthetic imports {unexplained}, whose code generator_hash does not read: move the code into "
        "mura_lib/synthetic/ or, if it cannot change a generated byte, explain why in OUTSIDE_IMPORTS "
        "(mura_lib/synthetic/generator.py)."
    )
    # No stale excuse: each entry of OUTSIDE_IMPORTS is really imported.
    assert unhashed == set(OUTSIDE_IMPORTS)
    # The walk sees imports by relative name and inside functions: analysis imports the package
    # only inside functions, and reaches modules that are neither hashed nor explained.
    assert "mura_lib.synthetic" in import_graph.graph()["mura_lib.analysis"]
    assert {"mura_lib.evaluation", "mura_lib.scoring"} <= _unhashed(_reached({"mura_lib.analysis"})) - set(
        OUTSIDE_IMPORTS
    )


def test_generator_hash_covers_every_module_of_the_package(tmp_path, monkeypatch):
    copy = tmp_path / "synthetic"
    shutil.copytree(generator.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = generator_hash()
    monkeypatch.setattr(generator, "PACKAGE_DIR", copy)
    assert generator_hash() == original  # by names and bytes, wherever the folder is
    modules = sorted(copy.glob("*.py"))
    assert len(modules) >= 6
    hashes = {original}
    for path in modules:
        data = path.read_bytes()
        path.write_bytes(data + b"\n")
        hashes.add(generator_hash())
        path.write_bytes(data)
        assert generator_hash() == original
    assert len(hashes) == len(modules) + 1, "a change to some module of mura_lib/synthetic leaves the hash alone"
    # A module added to the package, or one renamed within it, is covered too.
    (copy / "extra.py").write_text("")
    assert generator_hash() not in hashes
    (copy / "extra.py").unlink()
    (copy / "findings.py").rename(copy / "lesions.py")
    assert generator_hash() not in hashes
    # So are the values the generator takes from mura_lib.dataset.
    (copy / "lesions.py").rename(copy / "findings.py")
    monkeypatch.setattr(generator, "STUDY_TYPES", generator.STUDY_TYPES[::-1])
    assert generator_hash() not in hashes
