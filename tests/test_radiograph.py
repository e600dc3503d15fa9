"""The procedural radiographs: contract with mura_lib.synthetic, determinism, findings."""

from __future__ import annotations

import numpy as np
import pytest

from mura_lib.dataset import STUDY_TYPES
from mura_lib.synthetic import FINDINGS, draw_radiograph
from mura_lib.synthetic.anatomy import _CAMERAS
from mura_lib.synthetic.findings import _CAST_SEGMENTS, _FRACTURE_SITES


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


def test_every_table_by_study_type_covers_muras_study_types():
    for table in (_CAMERAS, _CAST_SEGMENTS, _FRACTURE_SITES):
        assert sorted(table) == sorted(STUDY_TYPES)


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


def _with_info(study_type, finding, seed, size=64, view=1, markers=True):
    rng = np.random.default_rng(seed)
    return draw_radiograph(
        study_type, finding=finding, view=view, size=size, rng=rng, markers=markers, return_info=True
    )


@pytest.mark.parametrize("finding", (None,) + FINDINGS)
def test_info_describes_the_film_without_changing_it(finding):
    for seed in range(4):
        study_type = STUDY_TYPES[seed]
        pixels, info = _with_info(study_type, finding, seed)
        assert np.array_equal(pixels, draw(study_type, finding, view=1, size=64, seed=seed))
        assert info["projection"] in ("AP", "LAT", "OBL")
        assert info["finding"] == finding
        assert info["hardware"] == (finding == "hardware") and info["cast"] == (finding == "cast")
        if finding is None:
            assert np.isnan(info["conspicuity"])
        else:
            assert 0.0 <= info["conspicuity"] <= 1.0


def test_conspicuity_spreads_over_its_range():
    """The subtle findings' strength is drawn, not fixed: weak and strong ones in a few films."""
    for finding in ("fracture", "lesion", "degenerative", "cast"):
        values = [_with_info(STUDY_TYPES[seed % 7], finding, seed)[1]["conspicuity"] for seed in range(12)]
        assert max(values) - min(values) > 0.3, (finding, values)
    assert {_with_info("XR_FOREARM", "hardware", seed)[1]["conspicuity"] for seed in range(3)} == {1.0}


@pytest.mark.parametrize("size", [64, 200])
def test_film_without_markers_differs_only_in_the_marker_box(size):
    with_marker = 0
    for seed in range(16):
        study_type, finding = STUDY_TYPES[seed % 7], ((None,) + FINDINGS)[seed % 6]
        pixels, info = _with_info(study_type, finding, seed, size=size, view=seed % 4 + 1)
        bare, bare_info = _with_info(study_type, finding, seed, size=size, view=seed % 4 + 1, markers=False)
        assert not bare_info["marker"] and bare_info["marker_box"] is None
        changed = pixels != bare
        if not info["marker"]:
            assert info["marker_box"] is None and not changed.any(), seed
            continue
        with_marker += 1
        x0, y0, x1, y1 = info["marker_box"]
        assert 0 <= x0 < x1 <= pixels.shape[1] and 0 <= y0 < y1 <= pixels.shape[0]
        # A small corner mark, changed inside its box and nowhere else.
        assert (x1 - x0) * (y1 - y0) < 0.2 * pixels.size, info["marker_box"]
        assert changed[y0:y1, x0:x1].any()
        changed[y0:y1, x0:x1] = False
        assert not changed.any(), seed
    assert with_marker >= 8  # most films carry a marker


@pytest.mark.parametrize("finding", FINDINGS)
def test_finding_box_covers_everything_the_finding_draws(finding):
    """The film drawn with and without the finding (the same random state) differs, in every layer
    the exposure reads, only inside the recorded box widened by nothing but the detector blur; and
    it does differ inside it.  The pixels are those of the film as drawn."""
    import copy

    from mura_lib.synthetic.radiograph import _LAYERS, _compose

    boxed = 0
    for seed in range(8):
        study_type, view, size = STUDY_TYPES[seed % 7], seed % 3 + 1, (64, 128)[seed % 2]
        pixels, info = _with_info(study_type, finding, seed, size=size, view=view)
        assert np.array_equal(pixels, draw(study_type, finding, view=view, size=size, seed=seed))
        rng = np.random.default_rng(seed)
        bare_rng = copy.deepcopy(rng)
        film = _compose(study_type, finding, view, size, rng)[1]
        bare = _compose(study_type, None, view, size, bare_rng)[1]
        changed = np.zeros(pixels.shape, dtype=bool)
        for layer in _LAYERS:
            changed |= getattr(film, layer) != getattr(bare, layer)
        if info["finding_box"] is None:  # degenerative change without a joint in the field
            assert finding == "degenerative" and not changed.any()
            continue
        boxed += 1
        x0, y0, x1, y1 = info["finding_box"]
        assert 0 <= x0 < x1 <= pixels.shape[1] and 0 <= y0 < y1 <= pixels.shape[0]
        assert changed[y0:y1, x0:x1].any()
        changed[y0:y1, x0:x1] = False
        assert not changed.any(), (seed, info["finding_box"])
    assert boxed >= 6


def test_finding_box_is_tight_for_small_findings_and_absent_without_one():
    """A lesion's or a screw's box is a small part of the film; a normal film has none."""
    assert _with_info("XR_WRIST", None, 0)[1]["finding_box"] is None
    for finding in ("lesion", "hardware"):
        shares = []
        for seed in range(6):
            pixels, info = _with_info(STUDY_TYPES[seed], finding, seed, size=128)
            x0, y0, x1, y1 = info["finding_box"]
            shares.append((x1 - x0) * (y1 - y0) / pixels.size)
        assert np.median(shares) < 0.15, (finding, shares)


def test_hardware_changes_pixels_only_inside_its_box():
    """Metal burns out after the tone curve is set, so the grey levels themselves change only in the box
    (up to the noise's dependence on the level, a few grey levels)."""
    for seed in range(6):
        study_type = ("XR_WRIST", "XR_FOREARM", "XR_HUMERUS")[seed % 3]
        pixels, info = _with_info(study_type, "hardware", seed, size=128)
        bare = draw(study_type, None, view=1, size=128, seed=seed)
        difference = np.abs(pixels.astype(int) - bare.astype(int))
        x0, y0, x1, y1 = info["finding_box"]
        assert difference[y0:y1, x0:x1].max() > 100
        difference[y0:y1, x0:x1] = 0
        assert difference.max() <= 4, seed
