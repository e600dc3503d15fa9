"""The findings of an abnormal view, drawn to physical scale.

One of :data:`FINDINGS`: fracture (a thin, jagged lucent line, sometimes displaced), hardware
(plates, screws, wires, nails, prostheses), cast (a textured shell around the limb), lesion (a
small lucent or sclerotic focus) or degenerative change (narrowed joint space, marginal
osteophytes, subchondral sclerosis).  Fractures, lesions and degenerative change are small, so
they blur away at low resolution; hardware and casts are conspicuous.  How conspicuous the subtle
findings are is set by :data:`FINDING_STRENGTH`, calibrated with ``benchmarks/calibration.py``.

The ``_plan_*`` functions choose where a finding goes before the limb is drawn (degenerative
change moves bones); the ``_apply_*`` and ``_draw_*`` functions draw it into a film.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .anatomy import _c01, _Ell, _rot, _tube_point, _unit
from .film import MU_CORTEX, _Film, _inside

FINDINGS = ("fracture", "hardware", "cast", "lesion", "degenerative")


# How conspicuous the subtle findings are; benchmarks/calibration.py tunes these.  Sizes marked
# "of the film" are fractions of the image's longest side, so that a finding covers the same
# number of pixels whatever the body part: a fracture line is about 2 to 4 pixels wide at
# 128 px and half that at 64, where it starts to blur away.
FINDING_STRENGTH = {
    "fracture_width": (0.015, 0.03),  # width of the lucent line, of the film
    "fracture_depth": (0.8, 1.0),  # share of the bone removed along the line
    "fracture_displaced": 0.7,  # share of fractures with displaced fragments
    "displacement": (0.6, 1.2),  # of the bone's radius
    "lesion_radius": (0.35, 0.7),  # of the bone's radius ...
    "lesion_radius_min": (0.05, 0.08),  # ... but at least this much of the film
    "lesion_depth": (0.8, 1.0),
    "degenerative_narrowing": (0.6, 0.95),  # share of the joint space lost
    "osteophyte": (0.05, 0.08),  # of the film
    "sclerosis": (0.6, 1.0),  # extra density at the ends facing the joint
    "cast_texture_period": (0.025, 0.045),  # of the film
    "cast_texture": 0.3,  # relative amplitude of the weave or mottle
    "swelling_cm": (0.6, 1.6),  # soft-tissue swelling around a fracture, lesion or joint
    "swelling_radius": (2.0, 3.5),  # of the bone's radius
}

# A cast's thickness (cm; half on a finger) and density, by material: its strength.
_CAST_THICKNESS = (0.5, 1.0)
_CAST_DENSITY = {"plaster": (0.35, 0.55), "fibreglass": (0.2, 0.32)}


# The part of the limb a cast covers, per study type (segments of ``_Limb.casts``).
_CAST_SEGMENTS = {
    "XR_FINGER": "finger",
    "XR_HAND": "hand",
    "XR_WRIST": "hand",
    "XR_FOREARM": "forearm",
    "XR_ELBOW": "arm",
    "XR_HUMERUS": "arm",
    "XR_SHOULDER": "arm",
}


_FRACTURE_SITES = {
    "XR_FINGER": ("ray",),
    "XR_HAND": ("ray",),
    "XR_WRIST": ("radius", "ulna", "scaphoid", "ray"),
    "XR_FOREARM": ("radius", "ulna"),
    "XR_ELBOW": ("radius", "ulna", "humerus", "condyles", "capitulum"),
    "XR_HUMERUS": ("humerus",),
    "XR_SHOULDER": ("humerus", "clavicle", "head", "tuberosity"),
}


def _pick(rng, items):
    return items[int(rng.integers(len(items)))] if items else None


_SAMPLES = np.linspace(0.04, 0.96, 24)


def _visible_tubes(limb, field, tags, min_len=4.0, need=3):
    """Tubes tagged ``tags`` with a good part in view, each as (index, (first, last visible fraction))."""
    out = []
    for i, t in enumerate(limb.tubes):
        if not t.tag.startswith(tags) or np.hypot(*(t.q1 - t.q0)) < min_len:
            continue
        pts = t.q0[None, :] + (t.q1 - t.q0)[None, :] * _SAMPLES[:, None]
        margin = max(t.r0 * 1.2, 3.0)
        ok = _SAMPLES[field.margin(pts) >= margin]
        if len(ok) >= need:
            out.append((i, (float(ok.min()), float(ok.max()))))
    if not out and need > 1:
        return _visible_tubes(limb, field, tags, min_len, need=1)
    return out


def _unit_interval(value, bounds) -> float:
    """Where ``value`` lies in the range ``bounds``, clipped to [0, 1]: a draw's strength."""
    lo, hi = bounds
    return float(min(max((value - lo) / (hi - lo), 0.0), 1.0))


def _frac_in(rng, span, lo, hi):
    """A position along a tube within [lo, hi] and within its visible ``span`` if they overlap."""
    a, b = max(lo, span[0]), min(hi, span[1])
    if a >= b:
        a, b = span
    return float(rng.uniform(a, b))


def _plan_fracture(rng, limb, study_type, field, px):
    S = FINDING_STRENGTH
    sites = _FRACTURE_SITES[study_type]
    tubes = _visible_tubes(limb, field, sites)
    ells = [i for i, e in enumerate(limb.ells) if e.tag in sites and _inside(e.c, field, max(e.a, e.b))]
    if not tubes and not ells:
        tubes = _visible_tubes(limb, field, "")
    width = rng.uniform(*S["fracture_width"]) * px
    spec = {
        "w": width,
        "depth": rng.uniform(*S["fracture_depth"]),
        "zz_amp": rng.uniform(0.0, 0.6) * max(width, 1.0),
        "zz_freq": rng.uniform(0.6, 2.0),
        "zz_phase": rng.uniform(0, 2 * math.pi),
        "pad": 0.0,
        "disp": None,
    }
    # How strong the line is within its ranges: width (of the film) and depth, averaged.
    spec["conspicuity"] = (
        _unit_interval(width / px, S["fracture_width"]) + _unit_interval(spec["depth"], S["fracture_depth"])
    ) / 2
    if ells and (not tubes or rng.random() < 0.25):
        i = _pick(rng, ells)
        e = limb.ells[i]
        spec.update(s=rng.uniform(-0.3, 0.3) * e.a, phi=rng.uniform(-0.5, 0.5))
        return ("ell", i, spec)
    i, span = _pick(rng, tubes) if tubes else (0, (0.2, 0.8))
    t = limb.tubes[i]
    L = float(np.hypot(*(t.q1 - t.q0)))
    r = t.r0
    if t.tag == "radius" and rng.random() < 0.6:
        frac = _frac_in(rng, span, 0.86, 0.94)  # the classic distal radius fracture
    else:
        frac = _frac_in(rng, span, 0.15, 0.85)
    rr = r * 1.6
    complete = rng.random() < 0.8
    lo = -rr if complete or rng.random() < 0.5 else rng.uniform(-0.3, 0.3) * r
    hi = rr if complete or lo > -rr else rng.uniform(-0.3, 0.3) * r
    spec.update(s=frac * L, phi=rng.uniform(-0.75, 0.75), lo=lo, hi=hi)
    spec["tan"] = math.tan(spec["phi"])
    spec["margin"] = rng.random() < 0.5  # sclerotic margins of a healing fracture
    if complete and rng.random() < S["fracture_displaced"] / 0.8:
        d = max(rng.uniform(*S["displacement"]) * r, 1.0)
        spec["disp"] = (rng.uniform(-1.0, 0.3) * d, d * (1 if rng.random() < 0.5 else -1), rng.uniform(-0.15, 0.15))
        spec["pad"] = d + abs(spec["disp"][2]) * L
        spec["depth"] *= 0.6
    return ("tube", i, spec)


def _plan_lesion(rng, limb, study_type, field, px):
    S = FINDING_STRENGTH
    cands = [("tube", i, span) for i, span in _visible_tubes(limb, field, "", min_len=6.0) if limb.tubes[i].long]
    for i, e in enumerate(limb.ells):
        if e.tag in ("head", "condyles", "capitate", "lunate", "scaphoid", "hamate", "glenoid") and _inside(
            e.c, field, max(e.a, e.b)
        ):
            cands.append(("ell", i, None))
    kind, i, span = _pick(rng, cands) if cands else ("tube", 0, (0.2, 0.8))
    if kind == "tube":
        t = limb.tubes[i]
        frac = (
            _frac_in(rng, span, 0.1, 0.9)
            if rng.random() < 0.5
            else _frac_in(rng, span, *((0.05, 0.2) if rng.random() < 0.5 else (0.8, 0.95)))
        )
        c = _tube_point(t, frac)
        u = _unit(t.q1 - t.q0)
        bone_r = t.r0 + (t.r1 - t.r0) * frac
        c = c + np.array([-u[1], u[0]]) * rng.uniform(-0.4, 0.4) * bone_r
    else:
        e = limb.ells[i]
        bone_r = min(e.a, e.b)
        c = e.c + rng.uniform(-0.4, 0.4, 2) * bone_r
    radius = max(rng.uniform(*S["lesion_radius"]) * bone_r, rng.uniform(*S["lesion_radius_min"]) * px)
    sclerotic = rng.random() < 0.35
    lesion = {
        "c": c,
        "r": radius,
        "bone_r": bone_r,
        "sclerotic": sclerotic,
        "depth": rng.uniform(*S["lesion_depth"]),
        "rim": rng.random() < 0.5,
        "aspect": rng.uniform(0.7, 1.4),
    }
    # How strong the focus is: its radius as a share of the film, within ``lesion_radius_min``
    # (larger lesions count as 1), and its depth, averaged.
    lesion["conspicuity"] = (
        _unit_interval(radius / px, S["lesion_radius_min"]) + _unit_interval(lesion["depth"], S["lesion_depth"])
    ) / 2
    return lesion


def _apply_lesion(film: _Film, les):
    c, r = les["c"], les["r"]
    g = film.box(c[0] - 1.5 * r - 1, c[0] + 1.5 * r + 1, c[1] - 1.5 * r - 1, c[1] + 1.5 * r + 1)
    if g is None:
        return
    sl, X, Y = g
    q = (np.square(X - np.float32(c[0])) * les["aspect"] + np.square(Y - np.float32(c[1])) / les["aspect"]) * (
        1.0 / (r * r)
    )
    disk = _c01((1.0 - q) * r * 0.7)  # soft-edged disk, at least about a pixel wide
    bone = film.cort[sl] + film.marrow[sl]
    inbone = np.clip(bone * np.float32(1.0 / (0.35 * float(bone.max()) + 1e-6)), 0.0, 1.0)
    path = np.float32(r * film.cmpp * MU_CORTEX * les["depth"])  # as dense as cortex
    if les["sclerotic"]:
        dome = np.sqrt(_c01(1.0 - q))
        film.cort[sl] += dome * inbone * (path * np.float32(1.5))
    else:
        film.cort[sl] *= 1.0 - disk * np.float32(les["depth"])
        film.marrow[sl] *= 1.0 - disk * np.float32(les["depth"])
        if les["rim"]:  # a sclerotic margin around a lucent lesion
            ring = _c01(1.0 - np.abs(np.sqrt(q) - 1.0) * r / 0.8)
            film.cort[sl] += ring * inbone * (path * np.float32(0.5))


def _plan_degenerative(rng, limb, study_type, field):
    cands = [j for j in limb.joints if _inside(j.p, field, 2.0)]
    if study_type in ("XR_FINGER", "XR_HAND"):
        pref = [j for j in cands if j.tag.startswith("ray")]
        cands = pref or cands
    return _pick(rng, cands)


def _apply_narrowing(limb, joint, amount):
    shift = joint.u * joint.gap * amount
    for kind, i in joint.movers:
        if kind == "t0":
            limb.tubes[i].q0 = limb.tubes[i].q0 - shift
        else:
            limb.ells[i].c = limb.ells[i].c - shift


def _draw_osteophytes(rng, film, joint, px):
    S = FINDING_STRENGTH
    perp = np.array([-joint.u[1], joint.u[0]])
    n = int(rng.integers(1, 4))
    sides = rng.permutation([-1.0, 1.0, -1.0, 1.0])[:n]
    strengths = []
    for side in sides:
        size = rng.uniform(*S["osteophyte"]) * px
        strengths.append(_unit_interval(size / px, S["osteophyte"]))
        along = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.2) * max(joint.gap, 1.0)
        c = joint.p + perp * side * (joint.w * rng.uniform(0.85, 1.05) + size * 0.4) + joint.u * along
        # A beak of bone at the joint margin, pointing outwards and across the joint.
        e = _Ell(c, max(size, 0.6), max(size * 0.4, 0.5), 0.0, depth=max(size * 0.8, 0.6), cortex=0.3, dens=1.6)
        e.axis = _unit(perp * side - joint.u * np.sign(along) * 0.6)
        film.ell(e)
    return strengths


# Hardware ------------------------------------------------------------------------------------


def _draw_hardware(rng, film, limb, study_type, field, cmpp):
    sites = {
        "XR_FINGER": ("ray",),
        "XR_HAND": ("ray",),
        "XR_WRIST": ("radius", "ulna", "ray"),
        "XR_FOREARM": ("radius", "ulna"),
        "XR_ELBOW": ("ulna", "radius", "humerus"),
        "XR_HUMERUS": ("humerus",),
        "XR_SHOULDER": ("humerus", "clavicle"),
    }[study_type]
    tubes = _visible_tubes(limb, field, sites) or _visible_tubes(limb, field, "") or [(0, (0.2, 0.8))]
    i, span = _pick(rng, tubes)
    t = limb.tubes[i]
    L = float(np.hypot(*(t.q1 - t.q0)))
    u = _unit(t.q1 - t.q0)
    nrm = np.array([-u[1], u[0]])
    r = t.r0
    mm = 0.1 / cmpp  # one millimetre in pixels
    kinds = ["plate", "screws", "wires"]
    if study_type == "XR_SHOULDER" and t.tag == "humerus" and rng.random() < 0.5:
        kinds = ["arthroplasty"]
    elif t.tag == "humerus" or (t.tag in ("radius", "ulna") and study_type == "XR_FOREARM"):
        kinds = ["plate", "plate", "nail", "wires"]
    kind = _pick(rng, kinds)
    if kind == "plate":
        frac = (
            _frac_in(rng, span, 0.3, 0.8)
            if t.tag != "radius" or rng.random() < 0.5
            else _frac_in(rng, span, 0.82, 0.88)
        )
        length = min(L * rng.uniform(0.35, 0.6), 14.0 / cmpp, film.h * 0.6, film.w * 0.6)
        side = 1 if rng.random() < 0.5 else -1
        c = _tube_point(t, frac) + nrm * side * r * rng.uniform(0.6, 1.1)
        q0, q1 = c - u * length / 2, c + u * length / 2
        hw = max(r * 0.55, 2.0 * mm, 1.0)
        film.metal_strip(q0, q1, hw, dens=0.9)
        nscrew = max(2, int(length / max(hw * 3.5, 2.0)))
        for k in range(nscrew):
            p = q0 + (q1 - q0) * (k + 0.5) / nscrew
            if rng.random() < 0.8:
                film.metal_strip(
                    p - nrm * side * r * 0.15, p - nrm * side * r * 2.3, max(hw * 0.4, 0.6), thread=0.5, dens=1.0
                )
            else:
                film.metal_disk(p, hw * 0.6, dens=0.4)
    elif kind == "screws":
        for _ in range(int(rng.integers(2, 5))):
            p = _tube_point(t, _frac_in(rng, span, 0.15, 0.85))
            ang = rng.uniform(-0.6, 0.6)
            d = _rot(ang) @ nrm
            a = p - d * r * 1.2
            b = p + d * r * rng.uniform(0.8, 1.3)
            film.metal_strip(a, b, max(r * 0.2, 1.5 * mm, 0.8), thread=0.5)
            film.metal_strip(a - d * r * 0.25, a + d * r * 0.05, max(r * 0.3, 0.8))  # head
    elif kind == "wires":
        for _ in range(int(rng.integers(1, 4))):
            p = _tube_point(t, _frac_in(rng, span, 0.1, 0.95))
            ang = rng.uniform(0.3, 1.2) * (1 if rng.random() < 0.5 else -1)
            d = _rot(ang) @ u
            length = r * rng.uniform(4, 9)
            film.metal_strip(p - d * length * 0.5, p + d * length * 0.5, max(0.8 * mm, 0.8), dens=1.0)
        if rng.random() < 0.3:  # tension band: a figure-of-eight wire
            p = _tube_point(t, _frac_in(rng, span, 0.1, 0.3))
            for sgn in (-1, 1):
                film.metal_strip(p - u * r * 2 + nrm * r * sgn, p + u * r * 3 - nrm * r * sgn, max(0.6 * mm, 0.5))
    elif kind == "nail":
        film.metal_strip(_tube_point(t, min(0.05, span[0])), _tube_point(t, max(0.9, span[1])), max(r * 0.35, 0.8))
        for frac in (0.12, 0.18, 0.8, 0.86):
            p = _tube_point(t, frac)
            film.metal_strip(p - nrm * r * 1.3, p + nrm * r * 1.3, max(r * 0.15, 0.5), thread=0.4)
    else:  # humeral head arthroplasty
        head = next((e for e in limb.ells if e.tag == "head"), None)
        if head is not None:
            c = head.c
            rr = head.a * 1.02
            g = film.box(c[0] - rr - 1, c[0] + rr + 1, c[1] - rr - 1, c[1] + rr + 1)
            if g is not None:
                sl, X, Y = g
                toward = _unit(limb.anchors["shoulder"] - c)
                dx, dy = X - np.float32(c[0]), Y - np.float32(c[1])
                rho = np.sqrt(np.square(dx) + np.square(dy))
                half = (dx * np.float32(toward[0]) + dy * np.float32(toward[1])) > -0.2 * rr
                a = _c01(rr + 0.5 - rho) * half
                np.maximum(film.metal[sl], a, out=film.metal[sl])
                film.has_metal = True
        film.metal_strip(_tube_point(t, 0.0), _tube_point(t, rng.uniform(0.3, 0.5)), max(r * 0.45, 1.0))


# Casts ---------------------------------------------------------------------------------------


def _draw_cast(rng, film: _Film, limb, study_type, size) -> list[float]:
    """A plaster (mottled) or fibreglass (woven) cast around the limb; returns the strengths of its draws."""
    h, w, cmpp = film.h, film.w, film.cmpp
    seg = limb.casts[_CAST_SEGMENTS[study_type]]
    plaster = rng.random() < 0.5
    # Texture on the scale of the film (like the findings' sizes), so that it shows at 64 px.
    amount = FINDING_STRENGTH["cast_texture"]
    period = max(rng.uniform(*FINDING_STRENGTH["cast_texture_period"]) * size, 2.5)
    if plaster:  # mottled
        mottle = ndimage.gaussian_filter(rng.standard_normal((h, w), dtype=np.float32), period / 3.0, truncate=2.5)
        texture = mottle * np.float32(amount / (mottle.std() + 1e-6))
    else:  # fibreglass: a woven mesh
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, math.pi)
        a1 = np.cos(ang) * xx + np.sin(ang) * yy
        a2 = -np.sin(ang) * xx + np.cos(ang) * yy
        texture = amount * 1.4 * (np.sin(a1 * (2 * math.pi / period)) * np.sin(a2 * (2 * math.pi / period)))
    thickness = rng.uniform(*_CAST_THICKNESS)
    thick = thickness * (0.5 if study_type == "XR_FINGER" else 1.0) / cmpp
    density_range = _CAST_DENSITY["plaster" if plaster else "fibreglass"]
    density = rng.uniform(*density_range)
    film.cast(seg, thick, density, texture.astype(np.float32))
    return [_unit_interval(thickness, _CAST_THICKNESS), _unit_interval(density, density_range)]
