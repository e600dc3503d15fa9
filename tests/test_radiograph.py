"""The procedural radiographs: contract with mura_lib.synthetic, determinism, findings."""

from __future__ import annotations

import numpy as np
import pytest

from mura_lib.radiograph import FINDINGS, STUDY_TYPES, draw_radiograph


def draw(study_type="XR_WRIST", finding=None, view=1, size=96, seed=0):
    return draw_radiograph(study_type, finding=finding, view=view, size=size, rng=np.random.default_rng(seed))


def test_findings_tuple_is_the_planners_contract():
    assert FINDINGS == ("fracture", "hardware", "cast", "lesion", "degenerative")


def test_same_seed_same_pixels_and_different_seed_different_pixels():
    a = draw("XR_HAND", "fracture", seed=11)
    b = draw("XR_HAND", "fracture", seed=11)
    c = draw("XR_HAND", "fracture", seed=12)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


@pytest.mark.parametrize("size", [32, 64, 97, 128])
def test_dtype_and_shape(size):
    for seed in range(6):
        img = draw(STUDY_TYPES[seed % len(STUDY_TYPES)], size=size, seed=seed)
        assert img.dtype == np.uint8 and img.ndim == 2
        assert max(img.shape) == size
        assert min(img.shape) <= size and min(img.shape) >= size // 2


@pytest.mark.parametrize("study_type", STUDY_TYPES)
def test_every_study_type_and_finding_draws_a_plausible_film(study_type):
    for k, finding in enumerate((None,) + FINDINGS):
        img = draw(study_type, finding, view=1 + k % 3, size=64, seed=k)
        # A film, not a blank: dark background, brighter anatomy, a real spread of grey levels.
        assert img.std() > 15, (study_type, finding)
        assert np.percentile(img, 5) < 60 and np.percentile(img, 99) > 120, (study_type, finding)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="finding"):
        draw(finding="tumour")
    with pytest.raises(ValueError, match="study_type"):
        draw("XR_KNEE")


def _paired(finding, study_type, seed, size=128):
    """The same film with and without ``finding``: the random stream is identical up to the finding."""
    normal = draw(study_type, None, size=size, seed=seed)
    abnormal = draw(study_type, finding, size=size, seed=seed)
    return normal.astype(np.int16), abnormal.astype(np.int16)


@pytest.mark.parametrize("study_type", ["XR_WRIST", "XR_FOREARM", "XR_HUMERUS", "XR_SHOULDER", "XR_FINGER"])
def test_hardware_adds_saturated_metal(study_type):
    gained = []
    for seed in range(3):
        normal, abnormal = _paired("hardware", study_type, seed)
        gained.append((abnormal >= 250).sum() - (normal >= 250).sum())
    # Metal burns out to white over an area far larger than noise could produce.
    assert min(gained) >= 15, gained


@pytest.mark.parametrize("study_type", ["XR_FOREARM", "XR_HAND", "XR_SHOULDER"])
@pytest.mark.parametrize("finding", ["fracture", "lesion", "degenerative", "cast"])
def test_every_finding_is_drawn_inside_the_film(finding, study_type):
    """The counterfactual pair differs, i.e. the finding landed in view, for every seed."""
    strongest = []
    for seed in range(4):
        normal, abnormal = _paired(finding, study_type, seed)
        assert normal.shape == abnormal.shape  # the finding has random numbers of its own
        diff = np.abs(abnormal - normal)
        assert (diff > 8).sum() >= 3, (finding, study_type, seed)
        strongest.append(diff.max())
    assert np.median(strongest) >= 25, strongest


def test_subtle_findings_are_small_and_conspicuous_ones_are_large():
    """Calibration in one line: casts change much more of the film than fractures or lesions."""
    changed = {}
    for finding in ("fracture", "lesion", "cast"):
        fractions = []
        for seed in range(4):
            normal, abnormal = _paired(finding, "XR_WRIST", seed)
            fractions.append((np.abs(abnormal - normal) > 25).mean())
        changed[finding] = float(np.median(fractions))
    assert changed["fracture"] < 0.05 and changed["lesion"] < 0.05, changed
    assert changed["cast"] > 3 * max(changed["fracture"], changed["lesion"]), changed
