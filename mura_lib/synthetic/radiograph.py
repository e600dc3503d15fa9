"""Procedural radiographs of the upper extremity: :func:`draw_radiograph`, the composition.

``draw_radiograph`` returns one 8-bit grayscale image whose longest side is ``size`` pixels.

How a picture is made
---------------------
1. A whole upper limb is laid out in centimetres (:func:`.anatomy._build_limb`): shoulder girdle,
   ribs, humerus, radius and ulna, carpus, metacarpals and phalanges, with soft tissue around
   them.  The projection (``view``: AP/PA, lateral, oblique) changes the pose: the elbow flexes,
   the forearm bones and the rays of the hand superimpose, the scapula turns into a "Y".
2. A camera per study type (:data:`.anatomy._CAMERAS`) picks the region, field of view, rotation
   and left/right mirroring, and maps centimetres to pixels.
3. Bones are drawn into a film (:class:`.film._Film`) as projections of solid shapes: tubes with a
   dense cortex, a lucent medulla and flared, cancellous ends; ellipsoids for carpal bones, the
   humeral head and the condyles; flat plates for the scapula.  X-ray attenuation adds up along
   the beam, so overlapping bones look brighter, as on film.
4. An abnormal view gets one finding (:mod:`.findings`), drawn to physical scale: fracture (a
   thin, jagged lucent line, sometimes displaced), hardware (plates, screws, wires, nails,
   prostheses), cast (a textured shell around the limb), lesion (a small lucent or sclerotic
   focus) or degenerative change (narrowed joint space, marginal osteophytes, subchondral
   sclerosis).  Fractures, lesions and degenerative change are small, so they blur away at low
   resolution; hardware and casts are conspicuous.
5. Exposure, contrast, noise, blur, the collimated field and burnt-in lead markers
   (:mod:`.film`) vary from image to image, as on real films, and are unrelated to the label.

Every random draw comes from the ``rng`` passed in, so the same generator state gives the same
pixels.  The finding draws from a stream of its own (seeded from ``rng``), so the same ``rng``
with and without a finding gives a counterfactual pair: the same film, with and without it.
The difficulty of the findings is set by :data:`.findings.FINDING_STRENGTH`, calibrated with
``benchmarks/calibration.py``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import ndimage

from ..dataset import STUDY_TYPES
from .anatomy import _CAMERAS, _build_limb, _camera, _tube_point, _unit, _view_kind
from .film import MU_CANCELLOUS, _collimate, _detector, _draw_markers, _expose, _Film, _inside
from .findings import (
    FINDING_STRENGTH,
    FINDINGS,
    _apply_lesion,
    _apply_narrowing,
    _draw_cast,
    _draw_hardware,
    _draw_osteophytes,
    _pick,
    _plan_degenerative,
    _plan_fracture,
    _plan_lesion,
    _unit_interval,
)


def draw_radiograph(
    study_type: str,
    *,
    finding: str | None,
    view: int,
    size: int,
    rng: np.random.Generator,
    markers: bool = True,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict]:
    """A synthetic radiograph of ``study_type`` as a ``uint8`` array (height, width).

    ``size`` is the longest side in pixels; ``view`` is the image number in the study (1: AP or
    PA, 2: lateral, 3: oblique, then repeating, with some shuffling); ``finding`` is None for a
    normal-looking view or one of :data:`FINDINGS`.  The same ``rng`` state gives the same image.

    ``markers=False`` draws the same film without its burnt-in lead markers: the random numbers
    are drawn all the same, so every other pixel is identical (the marker's pixels, blurred by
    the detector, are the only ones that differ).

    ``return_info=True`` returns ``(pixels, info)``, where ``info`` describes what was drawn:

    - ``projection``: ``"AP"``, ``"LAT"`` or ``"OBL"``;
    - ``finding``: the finding or None; ``hardware``, ``cast``: whether orthopaedic hardware or
      a cast is on the film (a ring on a finger is metal but not hardware);
    - ``conspicuity``: how strong the finding was drawn, in [0, 1] (NaN without a finding), as
      the position of its random draws within their ranges, averaged: a fracture's line width
      (of the film) and depth; a lesion's radius (of the film, within ``lesion_radius_min``;
      larger ones count as 1) and depth; degenerative change's joint narrowing, subchondral
      sclerosis and osteophyte size (0 if no joint was in the field to draw it on); a cast's
      thickness and density (within the ranges of plaster or fibreglass).  Hardware is metal
      that burns out to white, drawn at full strength: 1;
    - ``marker``: whether a burnt-in lead marker shows on the returned pixels, and
      ``marker_box``: the box of the pixels it changes, ``(x0, y0, x1, y1)`` with exclusive
      ends (None without a marker): the letters and the detector blur's fringe around them.
      The film with ``markers=False`` differs from this one exactly within this box;
    - ``finding_box``: where the finding is, ``(x0, y0, x1, y1)`` with exclusive ends (None without
      a finding, or when it changed nothing, as degenerative change with no joint in the field):
      the box of the pixels where the film's attenuation, metal or cast differs from the same film
      drawn without the finding (the fracture line or lesion with its soft-tissue swelling, the
      narrowed joint with its osteophytes, the hardware, the cast), widened by the detector blur.
      The exposure's tone curve is set from the whole film, so outside the box the grey levels
      of the film without the finding may differ slightly; the structures themselves differ only
      inside it.
    """
    if finding is not None and finding not in FINDINGS:
        raise ValueError(f"finding must be one of {FINDINGS} or None, got {finding!r}")
    if study_type not in _CAMERAS:
        raise ValueError(f"study_type must be one of {STUDY_TYPES}, got {study_type!r}")
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")

    # The same film without its finding, drawn from a copy of the generator's state, locates it.
    bare_rng = copy.deepcopy(rng) if return_info and finding is not None else None
    kind, film, field, tex = _compose(study_type, finding, view, size, rng)
    strengths = film.strengths

    # Exposure: attenuation to film density.
    img = _expose(rng, film, tex, cast=finding == "cast")

    # Lead markers are burnt in before the detector blur.
    fx0, fy0 = field.poly.min(axis=0)
    fx1, fy1 = field.poly.max(axis=0)
    bare = None  # the film without its marker, kept to locate the marker in the written image
    if rng.random() < 0.85:
        before = img.copy() if markers and return_info else None
        if _draw_markers(rng, img, (fx0, fx1, fy0, fy1), size, rng.uniform(0.78, 0.95), paint=markers):
            bare = before

    # The detector's random numbers are drawn first, so that a film can be developed twice (with
    # and without its marker).
    develop = _detector(rng, film, field, size)

    pixels = develop(img)
    if not return_info:
        return pixels
    marker_box = None
    if bare is not None:
        changed = develop(bare) != pixels
        if changed.any():
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            marker_box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    finding_box = None
    if bare_rng is not None:
        bare_film = _compose(study_type, None, view, size, bare_rng)[1]
        finding_box = _changed_box(film, bare_film, develop.radius)
    info = {
        "projection": kind,
        "finding": finding,
        "conspicuity": float(np.mean(strengths)) if strengths else (0.0 if finding else math.nan),
        "hardware": finding == "hardware",
        "cast": finding == "cast",
        "marker": marker_box is not None,
        "marker_box": marker_box,
        "finding_box": finding_box,
    }
    return pixels, info


# The film's layers that a finding can change (attenuation paths, metal and cast).
_LAYERS = ("soft", "extra", "cort", "marrow", "metal", "casting")


def _changed_box(film: _Film, bare: _Film, radius: int) -> tuple[int, int, int, int] | None:
    """The box ``(x0, y0, x1, y1)``, ends exclusive, of the pixels where ``film`` and ``bare`` differ
    in any layer, widened by the detector blur's ``radius`` and clipped to the film; None if none do."""
    changed = np.zeros((film.h, film.w), dtype=bool)
    for layer in _LAYERS:
        changed |= getattr(film, layer) != getattr(bare, layer)
    if not changed.any():
        return None
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    return (
        max(int(cols[0]) - radius, 0),
        max(int(rows[0]) - radius, 0),
        min(int(cols[-1]) + 1 + radius, film.w),
        min(int(rows[-1]) + 1 + radius, film.h),
    )


def _compose(study_type: str, finding: str | None, view: int, size: int, rng: np.random.Generator):
    """The film before exposure: ``(projection, film, field, tex)``, the finding drawn into it (its
    strengths in ``film.strengths``)."""
    kind = _view_kind(view, rng)
    young = rng.random() < 0.15
    limb = _build_limb(rng, kind, study_type, young)
    rot, scale, centre, h, w = _camera(rng, limb, study_type, size)
    limb.to_pixels(centre, scale, rot, np.array([w / 2.0, h / 2.0]))
    cmpp = 1.0 / scale
    film = _Film(h, w, cmpp)

    field = _collimate(rng, h, w)

    # Plan the finding before drawing (degenerative change moves bones).  Its random numbers
    # come from a stream of their own, so the same ``rng`` with and without a finding gives the
    # same film apart from the finding: a counterfactual pair.
    frng = np.random.default_rng(rng.integers(0, 2**63 - 1))
    fracture = lesion = joint = None
    strengths: list[float] = []  # the finding's draws, each placed within its range
    if finding == "fracture":
        fracture = _plan_fracture(frng, limb, study_type, field, size)
        strengths.append(fracture[2]["conspicuity"])
    elif finding == "lesion":
        lesion = _plan_lesion(frng, limb, study_type, field, size)
        strengths.append(lesion["conspicuity"])
    elif finding == "degenerative":
        joint = _plan_degenerative(frng, limb, study_type, field)
        if joint is not None:
            narrowing = frng.uniform(*FINDING_STRENGTH["degenerative_narrowing"])
            _apply_narrowing(limb, joint, narrowing)
            strengths.append(_unit_interval(narrowing, FINDING_STRENGTH["degenerative_narrowing"]))

    # Draw.
    for s in limb.soft:
        film.soft_tissue(s)
    for c in limb.chest:
        film.chest(*c)
    for p in limb.plates:
        film.plate(p)
    for a in limb.arcs:
        film.arc(a)
    scl_tubes = {}
    if joint is not None:
        for kind_, i in joint.movers:
            if kind_ == "t0":
                scl_tubes[i] = 0
        # The bone ending proximal to the joint.
        for i, t in enumerate(limb.tubes):
            if np.hypot(*(t.q1 - joint.p)) < max(joint.gap * 2.5, 2.0) + joint.gap:
                scl_tubes[i] = 1
    sclerosis_strengths: list[float] = []
    for i, t in enumerate(limb.tubes):
        fr = fracture[2] if fracture is not None and fracture[0] == "tube" and fracture[1] == i else None
        sc = None
        if i in scl_tubes:
            sclerosis = frng.uniform(*FINDING_STRENGTH["sclerosis"])
            sclerosis_strengths.append(_unit_interval(sclerosis, FINDING_STRENGTH["sclerosis"]))
            sc = (scl_tubes[i], max(0.02 * size, 1.5), sclerosis * MU_CANCELLOUS * t.r0)
        film.tube(t, young=young, fracture=fr, sclerosis=sc)
    for i, e in enumerate(limb.ells):
        fr = fracture[2] if fracture is not None and fracture[0] == "ell" and fracture[1] == i else None
        film.ell(e, fracture=fr)
    if joint is not None:
        osteophytes = _draw_osteophytes(frng, film, joint, size)
        for part in (sclerosis_strengths, osteophytes):
            if part:
                strengths.append(float(np.mean(part)))
    if lesion is not None:
        _apply_lesion(film, lesion)
    # Soft-tissue swelling (or an effusion) around a subtle finding.
    site = None
    if fracture is not None:
        kind_, i, spec = fracture
        if kind_ == "tube":
            t = limb.tubes[i]
            site = (t.q0 + _unit(t.q1 - t.q0) * spec["s"], t.r0)
        else:
            site = (limb.ells[i].c, min(limb.ells[i].a, limb.ells[i].b))
    elif lesion is not None:
        site = (lesion["c"], lesion["bone_r"])
    elif joint is not None:
        site = (joint.p, joint.w)
    if site is not None:
        radius = max(frng.uniform(*FINDING_STRENGTH["swelling_radius"]) * site[1], 0.04 * size)
        film.swelling(site[0], radius, frng.uniform(*FINDING_STRENGTH["swelling_cm"]))

    # Trabecular texture, then casts and hardware.
    tex = rng.standard_normal((h, w), dtype=np.float32)
    tex = ndimage.gaussian_filter(tex, max(0.9, 0.05 / cmpp), truncate=2.5)
    tex *= np.float32(1.0 / (tex.std() + 1e-6))
    if finding == "cast":
        strengths += _draw_cast(frng, film, limb, study_type, size)
    if finding == "hardware":
        _draw_hardware(frng, film, limb, study_type, field, cmpp)
        strengths.append(1.0)
    if study_type in ("XR_HAND", "XR_FINGER") and rng.random() < 0.04:
        # A ring: metal that is not a finding.
        cands = [t for t in limb.tubes if t.tag.endswith("_1") and _inside(_tube_point(t, 0.3), field, 2)]
        if cands:
            t = _pick(rng, cands)
            p = _tube_point(t, 0.35)
            nrm = _unit(np.array([-(t.q1 - t.q0)[1], (t.q1 - t.q0)[0]]))
            film.metal_strip(p - nrm * t.r0 * 2.2, p + nrm * t.r0 * 2.2, max(t.r0 * 0.25, 0.7))

    film.strengths = strengths
    return kind, film, field, tex
