"""Procedural radiographs of the upper extremity, for the synthetic MURA dataset.

``draw_radiograph`` returns one 8-bit grayscale image whose longest side is ``size`` pixels.

How a picture is made
---------------------
1. A whole upper limb is laid out in centimetres (:func:`_build_limb`): shoulder girdle, ribs,
   humerus, radius and ulna, carpus, metacarpals and phalanges, with soft tissue around them.
   The projection (``view``: AP/PA, lateral, oblique) changes the pose: the elbow flexes, the
   forearm bones and the rays of the hand superimpose, the scapula turns into a "Y".
2. A camera per study type (:data:`_CAMERAS`) picks the region, field of view, rotation and
   left/right mirroring, and maps centimetres to pixels.
3. Bones are drawn as projections of solid shapes: tubes with a dense cortex, a lucent
   medulla and flared, cancellous ends; ellipsoids for carpal bones, the humeral head and the
   condyles; flat plates for the scapula.  X-ray attenuation adds up along the beam, so
   overlapping bones look brighter, as on film.
4. An abnormal view gets one finding, drawn to physical scale: fracture (a thin, jagged
   lucent line, sometimes displaced), hardware (plates, screws, wires, nails, prostheses),
   cast (a textured shell around the limb), lesion (a small lucent or sclerotic focus) or
   degenerative change (narrowed joint space, marginal osteophytes, subchondral sclerosis).
   Fractures, lesions and degenerative change are small, so they blur away at low resolution;
   hardware and casts are conspicuous.
5. Exposure, contrast, noise, blur, the collimated field and burnt-in lead markers vary from
   image to image, as on real films, and are unrelated to the label.

Every random draw comes from the ``rng`` passed in, so the same generator state gives the same
pixels.  The finding draws from a stream of its own (seeded from ``rng``), so the same ``rng``
with and without a finding gives a counterfactual pair: the same film, with and without it.
The difficulty of the findings is set by :data:`FINDING_STRENGTH`, calibrated with
``benchmarks/calibration.py``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

FINDINGS = ("fracture", "hardware", "cast", "lesion", "degenerative")

STUDY_TYPES = ("XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND", "XR_HUMERUS", "XR_SHOULDER", "XR_WRIST")

# Linear attenuation per centimetre (arbitrary but consistent units).
MU_SOFT = 0.1
MU_CORTEX = 1.0
MU_MARROW = 0.12  # fatty marrow of a shaft
MU_CANCELLOUS = 0.5  # trabecular bone of the ends
MU_METAL = 40.0

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

# Region, field of view (cm along the longest side), rotation jitter (degrees) and the share of
# portrait canvases, per study type.
_CAMERAS = {
    "XR_FINGER": dict(fov=(7.5, 11.0), jitter=15, portrait=0.85),
    "XR_HAND": dict(fov=(18.5, 24.0), jitter=12, portrait=0.8),
    "XR_WRIST": dict(fov=(11.0, 16.0), jitter=15, portrait=0.75),
    "XR_FOREARM": dict(fov=(30.0, 37.0), jitter=8, portrait=0.9),
    "XR_ELBOW": dict(fov=(15.0, 21.0), jitter=15, portrait=0.7),
    "XR_HUMERUS": dict(fov=(36.0, 44.0), jitter=8, portrait=0.9),
    "XR_SHOULDER": dict(fov=(22.0, 30.0), jitter=10, portrait=0.45),
}

# 5x7 bitmap font for lead markers and technologists' initials.
_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "C": ("01111", "10000", "10000", "10000", "10000", "10000", "01111"),
    "D": ("11110", "10001", "10001", "10001", "10001", "10001", "11110"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "G": ("01111", "10000", "10000", "10011", "10001", "10001", "01111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "J": ("00111", "00010", "00010", "00010", "00010", "10010", "01100"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "M": ("10001", "11011", "10101", "10101", "10001", "10001", "10001"),
    "N": ("10001", "11001", "10101", "10011", "10001", "10001", "10001"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "W": ("10001", "10001", "10001", "10101", "10101", "11011", "10001"),
}
_GLYPH_BITS = {k: np.array([[c == "1" for c in row] for row in v], dtype=np.float32) for k, v in _GLYPHS.items()}
_INITIALS = "ABCDEGHJKMNPSTW"


_ZERO, _ONE = np.float32(0.0), np.float32(1.0)


def _c01(x):
    """``_c01(x)`` without its Python overhead (it matters on small arrays)."""
    return np.minimum(np.maximum(x, _ZERO), _ONE)


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _unit(v) -> np.ndarray:
    x, y = float(v[0]), float(v[1])
    n = math.hypot(x, y) + 1e-12
    return np.array([x / n, y / n])


# --------------------------------------------------------------------------------------------
# Shapes.  Built in centimetres, then moved to pixels by ``_Limb.to_pixels``.
# --------------------------------------------------------------------------------------------


class _Tube:
    """A long or short tubular bone from ``q0`` (proximal) to ``q1`` (distal)."""

    __slots__ = ("q0", "q1", "r0", "r1", "f0", "f1", "cap0", "cap1", "cortex", "dens", "tag", "long", "phys", "bend")

    def __init__(
        self,
        q0,
        q1,
        r0,
        r1=None,
        f0=1.4,
        f1=1.4,
        cap0=0.5,
        cap1=0.5,
        cortex=0.28,
        dens=1.0,
        tag="",
        long=True,
        phys=(True, True),
        bend=None,
    ):
        self.bend = bend  # (bow, s-curve) as offsets of the axis, in the same units as r0
        self.q0, self.q1 = np.asarray(q0, float), np.asarray(q1, float)
        self.r0, self.r1 = r0, r0 if r1 is None else r1
        self.f0, self.f1, self.cap0, self.cap1 = f0, f1, cap0, cap1
        self.cortex, self.dens, self.tag, self.long, self.phys = cortex, dens, tag, long, phys


class _Ell:
    """An ellipsoidal bone (carpal, humeral head, condyle) seen along one of its axes."""

    __slots__ = ("c", "axis", "a", "b", "depth", "cortex", "dens", "tag", "p")

    def __init__(self, c, a, b, angle=0.0, depth=None, cortex=0.12, dens=1.0, tag="", p=2.0):
        self.p = p
        self.c = np.asarray(c, float)
        self.axis = np.array([math.cos(angle), math.sin(angle)])
        self.a, self.b = a, b
        self.depth = min(a, b) if depth is None else depth
        self.cortex, self.dens, self.tag = cortex, dens, tag


class _Plate:
    """A flat bone (scapula body) as a convex polygon of constant thickness."""

    __slots__ = ("pts", "thick", "dens")

    def __init__(self, pts, thick, dens=1.0):
        self.pts, self.thick, self.dens = np.asarray(pts, float), thick, dens


class _Arc:
    """A rib: a thin tube bent along a circle, between two angles."""

    __slots__ = ("c", "radius", "r", "a0", "a1", "dens")

    def __init__(self, c, radius, r, a0, a1, dens=0.6):
        self.c, self.radius, self.r, self.a0, self.a1, self.dens = np.asarray(c, float), radius, r, a0, a1, dens


class _Soft:
    """Soft tissue: a capsule (``kind='cap'``) or an ellipsoid (``kind='ell'``)."""

    __slots__ = ("kind", "q0", "q1", "r0", "r1", "axis", "depth", "limb")

    def __init__(self, kind, q0, q1=None, r0=1.0, r1=None, angle=0.0, depth=None, limb=True):
        self.kind = kind
        self.q0 = np.asarray(q0, float)
        self.q1 = self.q0 if q1 is None else np.asarray(q1, float)
        self.r0, self.r1 = r0, r0 if r1 is None else r1
        self.axis = np.array([math.cos(angle), math.sin(angle)])
        self.depth = depth
        self.limb = limb


class _Joint:
    """A joint space: its centre, the axis from the proximal to the distal bone, half-width, gap."""

    __slots__ = ("p", "u", "w", "gap", "movers", "tag")

    def __init__(self, p, u, w, gap, movers, tag=""):
        self.p, self.u, self.w, self.gap, self.movers, self.tag = np.asarray(p, float), _unit(u), w, gap, movers, tag


class _Frame:
    """Local coordinates: ``origin + R(angle) @ (x * squash, y)``."""

    def __init__(self, origin, angle=0.0, squash=1.0):
        self.o = np.asarray(origin, float)
        self.m = _rot(angle) @ np.diag([squash, 1.0])
        self.squash = squash
        self._c = (float(self.o[0]), float(self.o[1]), *map(float, self.m.ravel()))

    def p(self, x, y):
        ox, oy, a, b, c, d = self._c
        return np.array([ox + a * x + b * y, oy + c * x + d * y])

    def v(self, x, y):
        _, _, a, b, c, d = self._c
        return np.array([a * x + b * y, c * x + d * y])

    def angle(self, a):
        d = self.m @ np.array([math.cos(a), math.sin(a)])
        return math.atan2(d[1], d[0])

    def width(self, a):
        """An in-plane width after squashing (bones keep some width when seen side-on)."""
        return a * (0.55 + 0.45 * self.squash)


class _Limb:
    def __init__(self):
        self.tubes: list[_Tube] = []
        self.ells: list[_Ell] = []
        self.plates: list[_Plate] = []
        self.arcs: list[_Arc] = []
        self.soft: list[_Soft] = []
        self.chest: list[tuple] = []  # (centre, a, b, depth, sign): torso (+) and lung (-)
        self.joints: list[_Joint] = []
        self.anchors: dict[str, np.ndarray] = {}
        self.casts: dict[str, list] = {}

    def tube(self, *args, **kwargs) -> int:
        self.tubes.append(_Tube(*args, **kwargs))
        return len(self.tubes) - 1

    def ell(self, *args, **kwargs) -> int:
        self.ells.append(_Ell(*args, **kwargs))
        return len(self.ells) - 1

    def chain(self, frame: _Frame, start, direction, lengths, radii, gap, tag, flex=(), thumb=False):
        """Phalanges (or a metacarpal and phalanges) end to end; returns tube indices."""
        ids = []
        x, y = start
        angle = math.atan2(direction[1], direction[0])
        for k, (length, radius) in enumerate(zip(lengths, radii)):
            if k < len(flex):
                angle += flex[k]
            d = np.array([math.cos(angle), math.sin(angle)])
            q0 = frame.p(x, y)
            q1 = frame.p(x + d[0] * length, y + d[1] * length)
            last = k == len(lengths) - 1
            f1 = 1.55 if last else 1.45
            i = self.tube(
                q0,
                q1,
                radius,
                radius * (0.95 if not last else 1.0),
                f0=1.55,
                f1=f1,
                cap0=0.35,
                cap1=0.55 if not last else 0.8,
                cortex=0.3,
                tag=f"{tag}{k}",
                long=True,
                phys=(True, False),
            )
            if ids:
                prev = self.tubes[ids[-1]]
                u = _unit(q0 - prev.q1)
                self.joints.append(_Joint((prev.q1 + q0) / 2, u, radius * 1.5, gap, [("t0", i)], tag=f"{tag}{k}"))
            ids.append(i)
            x, y = x + d[0] * (length + gap), y + d[1] * (length + gap)
        return ids

    def to_pixels(self, centre, scale, rot, offset):
        """Move every shape from centimetres to pixels: ``offset + scale * rot @ (p - centre)``."""

        m00, m01, m10, m11 = (float(v) * scale for v in rot.ravel())
        cx, cy, ox, oy = float(centre[0]), float(centre[1]), float(offset[0]), float(offset[1])

        def P(p):
            x, y = p[0] - cx, p[1] - cy
            return np.array([ox + m00 * x + m01 * y, oy + m10 * x + m11 * y])

        for t in self.tubes:
            t.q0, t.q1 = P(t.q0), P(t.q1)
            t.r0, t.r1 = t.r0 * scale, t.r1 * scale
            if t.bend is not None:
                # Mirroring flips the side the bone bows to.
                sign = -1.0 if np.linalg.det(rot) < 0 else 1.0
                t.bend = (t.bend[0] * scale * sign, t.bend[1] * scale * sign)
        for e in self.ells:
            e.c, e.axis = P(e.c), rot @ e.axis
            e.a, e.b, e.depth, e.cortex = e.a * scale, e.b * scale, e.depth * scale, e.cortex * scale
        for p in self.plates:
            p.pts = np.array([P(q) for q in p.pts])
            p.thick *= scale
        for a in self.arcs:
            a.c, a.radius, a.r = P(a.c), a.radius * scale, a.r * scale
            # Mirroring flips the sense of angles.
            base = math.atan2(rot[1, 0], rot[0, 0])
            if np.linalg.det(rot) < 0:
                a.a0, a.a1 = base - a.a1, base - a.a0
            else:
                a.a0, a.a1 = a.a0 + base, a.a1 + base
        for s in self.soft:
            s.q0, s.q1, s.axis = P(s.q0), P(s.q1), rot @ s.axis
            s.r0, s.r1 = s.r0 * scale, s.r1 * scale
            if s.depth is not None:
                s.depth *= scale
        self.chest = [(P(c), a * scale, b * scale, d * scale, sign) for c, a, b, d, sign in self.chest]
        for j in self.joints:
            j.p, j.u, j.w, j.gap = P(j.p), rot @ j.u, j.w * scale, j.gap * scale
        self.anchors = {k: P(v) for k, v in self.anchors.items()}
        self.casts = {k: [(P(a), P(b), r0 * scale, r1 * scale) for a, b, r0, r1 in v] for k, v in self.casts.items()}


def _view_kind(view: int, rng: np.random.Generator) -> str:
    kinds = ("AP", "LAT", "OBL")
    if rng.random() < 0.2:
        return kinds[int(rng.integers(3))]
    return kinds[(max(view, 1) - 1) % 3]


def _build_limb(rng: np.random.Generator, view: str, study_type: str, young: bool) -> _Limb:
    """A right upper limb in centimetres, arm hanging down (+y distal), lateral towards +x."""
    L = _Limb()
    k = rng.uniform(0.9, 1.08) * (0.88 if young else 1.0)
    J = lambda a, b: rng.uniform(a, b)  # noqa: E731

    # Shoulder girdle.  Origin at the centre of the humeral head.
    if study_type in ("XR_SHOULDER", "XR_HUMERUS"):
        sq = {"AP": 1.0, "OBL": 0.6, "LAT": 0.22}[view]
        g = _Frame((-2.9 * k * (0.6 + 0.4 * sq), 0.0), 0.0, sq)
        L.ell(
            g.p(0.0, 0.2 * k),
            g.width(0.8 * k),
            2.0 * k,
            J(-0.1, 0.1),
            depth=1.2 * k,
            cortex=0.2 * k,
            dens=0.9,
            tag="glenoid",
        )
        L.plates.append(
            _Plate(
                [
                    g.p(-0.3 * k, -1.8 * k),
                    g.p(-0.2 * k, 2.4 * k),
                    g.p(-7.5 * k, 14.0 * k),
                    g.p(-11.0 * k, 11.5 * k),
                    g.p(-11.5 * k, -2.6 * k),
                    g.p(-3.5 * k, -2.8 * k),
                ],
                0.35 * k,
                dens=0.9,
            )
        )
        L.tube(
            g.p(-0.4 * k, 2.4 * k),
            g.p(-7.2 * k, 14.0 * k),
            0.35 * k,
            0.3 * k,
            f0=1.0,
            f1=1.3,
            cortex=0.4,
            dens=0.7,
            tag="scap_border",
            long=False,
        )
        L.tube(
            g.p(-11.0 * k, -1.5 * k),
            g.p(-1.0 * k, -3.6 * k),
            0.55 * k,
            0.6 * k,
            f0=1.0,
            f1=1.2,
            cortex=0.35,
            tag="scap_spine",
            long=False,
        )
        L.tube(
            g.p(-0.5 * k, -2.2 * k),
            g.p(1.4 * k, -1.2 * k),
            0.45 * k,
            0.45 * k,
            f0=1.2,
            f1=1.3,
            cortex=0.35,
            tag="coracoid",
            long=False,
        )
        acr0 = np.array([-1.6 * k, -3.9 * k])
        acr1 = np.array([2.6 * k, -3.5 * k + J(-0.3, 0.3)])
        L.tube(acr0, acr1, 0.7 * k, 0.75 * k, f0=1.0, f1=1.15, cap1=0.4, cortex=0.3, tag="acromion", long=False)
        # Clavicle, gently S-shaped, from the acromioclavicular joint medially.
        c0 = acr1 + np.array([0.4 * k, -0.5 * k])
        L.tube(
            c0,
            c0 + np.array([-16.5, 0.6]) * k,
            0.6 * k,
            0.62 * k,
            f0=1.35,
            f1=1.25,
            cap0=0.3,
            cap1=0.4,
            cortex=0.3,
            tag="clavicle",
            long=True,
            phys=(False, False),
            bend=(0.3 * k, 0.9 * k),
        )
        L.joints.append(_Joint((acr1 + c0) / 2, c0 - acr1, 0.7 * k, 0.3 * k, [], tag="ac"))
        # Ribs and chest wall medially.
        for i in range(7):
            L.arcs.append(_Arc((-14.0 * k, (4.0 + 3.6 * i) * k), 8.5 * k, 0.5 * k, -2.4, -0.15 - 0.05 * i, dens=0.5))
        L.chest.append((np.array([-17.0 * k, 12.0 * k]), 11.0 * k, 24.0 * k, 5.0 * k, 1.0))
        L.chest.append((np.array([-16.0 * k, 13.0 * k]), 8.5 * k, 17.0 * k, 4.0 * k, -1.0))
        L.soft.append(_Soft("ell", (0.3 * k, 1.8 * k), r0=5.0 * k, r1=6.2 * k, angle=math.pi / 2, depth=5.0 * k))
        L.soft.append(_Soft("cap", (-16 * k, -4.5 * k), (1.0 * k, -3.0 * k), 3.2 * k, 3.5 * k))
        L.anchors["shoulder"] = np.array([-2.2 * k, 1.0 * k])

    # Humerus.  Rotation moves the greater tuberosity from the profile onto the head.
    ext = J(0, 1) if view != "LAT" else J(0, 0.4)
    L.ell((0.0, 0.0), 2.3 * k, 2.45 * k, J(-0.2, 0.2), depth=2.0 * k, cortex=0.09 * k, dens=0.85, tag="head")
    L.ell(
        ((0.6 + 1.5 * ext) * k, -0.7 * k),
        1.0 * k,
        1.45 * k,
        0.3,
        depth=1.0 * k,
        cortex=0.06 * k,
        dens=0.7,
        tag="tuberosity",
    )
    L.joints.append(_Joint((-2.55 * k, 0.2 * k), (-1.0, 0.0), 2.0 * k, 0.45 * k, [("e", 0)], tag="glenohumeral"))
    hx = J(-0.2, 0.2) * k
    sq_e = {"AP": 1.0, "OBL": 0.7, "LAT": 0.35}[view]
    L.tube(
        (0.45 * k, 2.0 * k),
        (hx, 30.4 * k),
        1.15 * k,
        1.0 * k,
        f0=1.3,
        f1=1.3 + 1.25 * sq_e,
        cap0=0.3,
        cap1=0.12,
        cortex=0.3,
        tag="humerus",
        long=True,
        phys=(True, False),
    )
    # Distal humerus: condyles.  A lateral view superimposes them.
    e = _Frame((hx, 30.3 * k), 0.0, sq_e)
    L.ell(e.p(0.0, -0.3 * k), e.width(2.4 * k), 1.1 * k, depth=0.9 * k, cortex=0.05 * k, dens=0.5, tag="condyles")
    L.ell(e.p(-2.9 * k, -0.5 * k), 0.6 * k, 0.5 * k, depth=0.5 * k, cortex=0.06 * k, dens=0.8, tag="epicondyle")
    L.ell(e.p(-0.8 * k, 0.55 * k), e.width(1.2 * k), 0.95 * k, depth=1.2 * k, cortex=0.08 * k, dens=0.7, tag="trochlea")
    L.ell(
        e.p(1.5 * k, 0.45 * k), e.width(0.95 * k), 0.85 * k, depth=1.0 * k, cortex=0.07 * k, dens=0.7, tag="capitulum"
    )
    L.chest.append((e.p(0.0, -0.9 * k), e.width(0.85 * k), 0.75 * k, -1.2 * k, 0.0))  # olecranon fossa (bone lucency)
    L.soft.append(_Soft("cap", (0.0, 0.0), (hx, 31.0 * k), 4.6 * k, 3.9 * k))
    L.anchors["humerus"] = np.array([hx / 2, 15.0 * k])
    L.casts["arm"] = [(np.array([0.2 * k, 6.0 * k]), np.array([hx, 31.0 * k]), 4.9 * k, 4.3 * k)]

    # Forearm, hinged at the elbow: carrying angle in AP, flexion in lateral views.
    elbow = np.array([hx + 0.3 * k, 31.6 * k])
    flex = {"AP": -J(4, 14), "OBL": -J(15, 45), "LAT": -J(75, 100)}[view]
    if study_type in ("XR_WRIST", "XR_HAND", "XR_FINGER"):
        flex = -J(0, 10)  # the elbow hardly shows; keep the forearm straight
    sq_f = {"AP": 1.0, "OBL": 0.7, "LAT": 0.3}[view]
    f = _Frame(elbow, math.radians(flex), sq_f)
    L.anchors["elbow"] = elbow + f.v(0.0, 0.5 * k)
    rl = 23.5 * k
    L.tube(
        f.p(1.9 * k, 1.0 * k),
        f.p(1.5 * k, 1.35 * k + rl),
        0.6 * k,
        0.72 * k,
        f0=1.75,
        f1=1.6 + 0.7 * sq_f,
        cap0=0.2,
        cap1=0.25,
        cortex=0.3,
        tag="radius",
        long=True,
    )
    L.tube(
        f.p(-1.0 * k, -1.8 * k),
        f.p(-1.6 * k, 1.3 * k + rl),
        0.68 * k,
        0.42 * k,
        f0=2.0,
        f1=1.65,
        cap0=0.7,
        cap1=0.6,
        cortex=0.3,
        tag="ulna",
        long=True,
    )
    L.joints.append(
        _Joint(e.p(-0.8 * k, 2.2 * k), f.v(0, 1), 1.3 * k, 0.3 * k, [("t0", len(L.tubes) - 2)], tag="elbow")
    )
    L.soft.append(_Soft("cap", f.p(0.0, -1.0 * k), f.p(0.6 * k, rl + 1.5 * k), 4.1 * k, 2.7 * k))
    L.anchors["forearm"] = f.p(0.5 * k, rl * 0.5)
    L.casts["forearm"] = [(f.p(0.0, 0.4 * rl), f.p(0.6 * k, rl + 1.5 * k), 3.9 * k, 3.0 * k)]
    L.casts["arm"].append((f.p(0.0, -1.0 * k), f.p(0.3 * k, 0.6 * rl), 4.4 * k, 3.6 * k))

    # Hand and wrist.  Origin at the distal radius; squashing superimposes the rays.
    wrist_dev = math.radians(J(-12, 12))
    hf = _Frame(f.p(0.2 * k, rl + 1.55 * k), math.radians(flex) + wrist_dev, {"AP": 1.0, "OBL": 0.6, "LAT": 0.28}[view])
    w = hf.width
    L.anchors["wrist"] = hf.p(0.0, 1.8 * k)
    carpals = [
        ("scaphoid", 1.45, 0.85, 0.66, 1.1, 0.65),
        ("lunate", 0.15, 0.8, 0.75, 0.7, 0.0),
        ("triquetrum", -1.2, 1.2, 0.66, 0.6, 0.3),
        ("pisiform", -1.4, 1.5, 0.45, 0.45, 0.0),
        ("trapezium", 2.0, 2.55, 0.72, 0.66, 0.4),
        ("trapezoid", 1.05, 2.75, 0.56, 0.62, 0.0),
        ("capitate", 0.0, 2.6, 0.72, 1.15, 0.0),
        ("hamate", -1.2, 2.4, 0.76, 0.95, 0.2),
    ]
    for tag, x, y, a, b, ang in carpals:
        L.ell(
            hf.p(x * k, y * k),
            w(a * k),
            b * k,
            hf.angle(math.pi / 2 + ang) - math.pi / 2,
            depth=0.75 * k,
            cortex=0.05 * k,
            dens=0.9,
            tag=tag,
            p=2.6,
        )
    L.joints.append(
        _Joint(
            hf.p(0.6 * k, 0.05 * k),
            hf.v(0, 1),
            1.6 * k,
            0.25 * k,
            [("e", len(L.ells) - 8), ("e", len(L.ells) - 7)],
            tag="radiocarpal",
        )
    )
    # Rays: (metacarpal base x, y, angle deg, MC length, MC radius, phalanx lengths, phalanx radii)
    spread = J(0.6, 1.4) if view == "AP" else J(0.2, 0.6)
    rays = [
        (1.15, 3.9, 9, 6.6, 0.42, (4.0, 2.4, 1.7), (0.38, 0.32, 0.28)),
        (0.1, 4.0, 0, 6.4, 0.43, (4.4, 2.8, 1.8), (0.39, 0.33, 0.29)),
        (-0.9, 3.85, -8, 5.8, 0.37, (4.1, 2.6, 1.75), (0.36, 0.31, 0.27)),
        (-1.8, 3.55, -17, 5.3, 0.35, (3.3, 1.9, 1.55), (0.32, 0.28, 0.25)),
    ]
    finger_ids = []
    isolate = study_type == "XR_FINGER" and rng.random() < 0.45
    chosen = int(rng.integers(5)) if study_type == "XR_FINGER" else -1
    for n, (x, y, deg, mcl, mcr, pl, pr) in enumerate(rays):
        a = math.radians(90 - deg * spread)
        d = (math.cos(a), math.sin(a))
        fl = (0.0,) + tuple(
            math.radians(J(0, 25 if view == "LAT" else 8)) * (1 if rng.random() < 0.5 else -1) for _ in range(3)
        )
        if isolate and n + 1 != chosen:
            ids = L.chain(hf, (x * k, y * k), d, (mcl * k,), (mcr * k,), 0.2 * k, f"ray{n + 1}_")
        else:
            ids = L.chain(
                hf,
                (x * k, y * k),
                d,
                (mcl * k,) + tuple(v * k for v in pl),
                (mcr * k,) + tuple(v * k for v in pr),
                0.2 * k,
                f"ray{n + 1}_",
                flex=fl,
            )
        finger_ids.append(ids)
    # Thumb.
    ta = math.radians(90 - J(30, 48) * (spread if view == "AP" else 0.7))
    thumb = L.chain(
        hf,
        (2.55 * k, 3.15 * k),
        (math.cos(ta), math.sin(ta)),
        (4.3 * k, 3.0 * k, 2.2 * k),
        (0.45 * k, 0.4 * k, 0.33 * k),
        0.2 * k,
        "ray0_",
        flex=(0.0, math.radians(J(-8, 15)), math.radians(J(-5, 20))),
    )
    if isolate and chosen != 0:
        # Keep only the metacarpal of the thumb.
        drop = thumb[1:]
        L.tubes = [t for i, t in enumerate(L.tubes) if i not in drop]
        L.joints = [jj for jj in L.joints if not any(m[1] in drop for m in jj.movers)]
        thumb = thumb[:1]
    finger_ids.insert(0, thumb)
    L.ell(hf.p(2.6 * k, 7.1 * k), w(0.28 * k), 0.28 * k, depth=0.3 * k, cortex=0.06 * k, dens=0.8, tag="sesamoid")
    # Soft tissue of the wrist, palm and fingers.
    L.soft.append(_Soft("cap", hf.p(0.0, -4.0 * k), hf.p(0.0, 2.0 * k), 2.8 * k, w(3.0 * k)))
    L.soft.append(_Soft("ell", hf.p(-0.1 * k, 5.6 * k), r0=w(4.1 * k), r1=5.2 * k, angle=hf.angle(0.0), depth=1.5 * k))
    for ids in finger_ids:
        first, last = L.tubes[ids[0]], L.tubes[ids[-1]]
        rr = 1.1 * k if ids is thumb else 0.92 * k
        tip = last.q1 + _unit(last.q1 - last.q0) * 0.25 * k
        if len(ids) > 1:
            start = L.tubes[ids[1]].q0 if ids is not thumb else first.q0 + (first.q1 - first.q0) * 0.2
            L.soft.append(_Soft("cap", start, tip, rr * (1.3 if ids is thumb else 1.15), rr * 0.82))
    L.anchors["hand"] = hf.p(0.0, 7.5 * k)
    L.casts["hand"] = [(hf.p(0.0, -8.0 * k), hf.p(0.0, 7.0 * k), 3.3 * k, w(4.9 * k))]
    # Finger anchor: the proximal interphalangeal joint of the chosen ray.
    if chosen < 0:
        chosen = int(rng.integers(5))
    ids = finger_ids[chosen]
    base = L.tubes[ids[1]] if len(ids) > 1 else L.tubes[ids[0]]
    L.anchors["finger"] = base.q1 * 0.7 + base.q0 * 0.3
    L.anchors["finger_axis"] = _unit(base.q1 - base.q0)
    tip = L.tubes[ids[-1]].q1
    L.casts["finger"] = [(L.tubes[ids[0]].q0 * 0.5 + L.tubes[ids[0]].q1 * 0.5, tip, 1.2 * k, 1.0 * k)]
    L.anchors["forearm_axis"] = _unit(f.v(0, 1))
    L.anchors["hand_axis"] = _unit(hf.v(0, 1))
    return L


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


class _Film:
    """Accumulators for one picture, in pixels; thickness is converted to centimetres."""

    def __init__(self, h, w, cm_per_px):
        self.h, self.w, self.cmpp = h, w, cm_per_px
        self.soft = np.zeros((h, w), np.float32)  # soft-tissue thickness, max-combined
        self.extra = np.zeros((h, w), np.float32)  # chest wall, lung, casts
        self.cort = np.zeros((h, w), np.float32)
        self.marrow = np.zeros((h, w), np.float32)
        self.metal = np.zeros((h, w), np.float32)
        self.casting = np.zeros((h, w), np.float32)
        self.has_metal = False

    def box(self, x0, x1, y0, y1):
        ix0, ix1 = max(int(x0), 0), min(int(x1) + 2, self.w)
        iy0, iy1 = max(int(y0), 0), min(int(y1) + 2, self.h)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        X = np.arange(ix0, ix1, dtype=np.float32)[None, :]
        Y = np.arange(iy0, iy1, dtype=np.float32)[:, None]
        return (slice(iy0, iy1), slice(ix0, ix1)), X, Y

    # Bones ---------------------------------------------------------------------------------

    def tube(self, t: _Tube, young=False, fracture=None, sclerosis=None):
        L = float(np.hypot(*(t.q1 - t.q0)))
        if L < 1e-3:
            return
        rmax = max(t.r0 * t.f0, t.r1 * t.f1) + 1.0 + (abs(t.bend[0]) + abs(t.bend[1]) if t.bend else 0.0)
        pad = rmax + (fracture["pad"] if fracture else 0.0)
        g = self.box(
            min(t.q0[0], t.q1[0]) - pad,
            max(t.q0[0], t.q1[0]) + pad,
            min(t.q0[1], t.q1[1]) - pad,
            max(t.q0[1], t.q1[1]) + pad,
        )
        if g is None:
            return
        sl, X, Y = g
        u = (t.q1 - t.q0) / L
        dx, dy = X - np.float32(t.q0[0]), Y - np.float32(t.q0[1])
        s = dx * np.float32(u[0]) + dy * np.float32(u[1])
        n = dy * np.float32(u[0]) - dx * np.float32(u[1])
        if t.bend is not None:
            uu = _c01(s * (1.0 / L))
            n = (
                n
                - np.float32(t.bend[0]) * 4.0 * uu * (1.0 - uu)
                - np.float32(t.bend[1]) * np.sin(uu * np.float32(2 * math.pi))
            )
        if fracture is not None and fracture.get("disp") is not None:
            # Two fragments: the proximal one in place, the distal one shifted and tilted.
            sf, tanp = fracture["s"], fracture["tan"]
            cort_a, mar_a = self._tube_profile(t, L, s, n, young)
            side = (s - sf) - n * tanp
            ds, dn, ang = fracture["disp"]
            ca, sa = math.cos(ang), math.sin(ang)
            s1, n1 = s - sf - ds, n - dn
            s2 = ca * s1 + sa * n1 + sf
            n2 = -sa * s1 + ca * n1
            cort_b, mar_b = self._tube_profile(t, L, s2, n2, young)
            side_b = (s2 - sf) - n2 * tanp
            wa = _c01(0.5 - side)
            wb = _c01(0.5 + side_b)
            cort = cort_a * wa + cort_b * wb
            mar = mar_a * wa + mar_b * wb
        else:
            cort, mar = self._tube_profile(t, L, s, n, young)
        if fracture is not None:
            f = fracture
            along = (s - f["s"]) * math.cos(f["phi"]) - n * math.sin(f["phi"])  # distance across the line
            across = (s - f["s"]) * math.sin(f["phi"]) + n * math.cos(f["phi"])  # position along it
            along = along + f["zz_amp"] * np.sin(across * f["zz_freq"] + f["zz_phase"])
            prof = _line_profile(along, f["w"]) * _c01((across - f["lo"]) + 0.5) * _c01((f["hi"] - across) + 0.5)
            keep = 1.0 - f["depth"] * prof
            if f.get("margin"):
                band = np.exp(-np.square((np.abs(along) - f["w"] - 0.5) * (1.0 / max(f["w"], 1.0))))
                band = band * _c01((across - f["lo"]) + 0.5) * _c01((f["hi"] - across) + 0.5)
                keep = keep + 0.8 * band
            cort, mar = cort * keep, mar * keep
        if sclerosis is not None:
            # Subchondral sclerosis: denser bone near the end facing the joint.
            end, width, amount = sclerosis
            dist = (L - s) if end == 1 else s
            band = _c01(1.0 - dist / width)
            mar = mar + band * amount * (mar > 0)
        self.cort[sl] += cort * np.float32(t.dens * self.cmpp)
        self.marrow[sl] += mar * np.float32(t.dens * self.cmpp)

    def _tube_profile(self, t: _Tube, L, s, n, young):
        uu = _c01(s * (1.0 / L))
        rs = t.r0 + (t.r1 - t.r0) * uu
        b0 = np.square(_c01(1.0 - uu * 4.5))
        b1 = np.square(_c01(1.0 - (1.0 - uu) * 4.5))
        ends = np.minimum(b0 + b1, 1.0)
        R = rs * (1.0 + (t.f0 - 1.0) * b0 + (t.f1 - 1.0) * b1)
        c0 = max(t.cap0 * t.r0 * t.f0, 0.5)
        c1 = max(t.cap1 * t.r1 * t.f1, 0.5)
        z = np.maximum((c0 - s) * (1.0 / c0), (s - (L - c1)) * (1.0 / c1))
        R = R * np.sqrt(_c01(1.0 - np.square(np.maximum(z, 0.0))))
        n2 = np.square(n)
        outer = np.sqrt(np.maximum(np.square(R) - n2, 0.0))
        ri = np.maximum(R - t.cortex * rs * (1.0 - 0.65 * ends), 0.0)
        inner = np.sqrt(np.maximum(np.square(ri) - n2, 0.0))
        mar = inner * (MU_MARROW + (MU_CANCELLOUS - MU_MARROW) * ends)
        cort = (outer - inner) * MU_CORTEX
        if young and t.long:
            # Growth plates: smooth lucent bands near the ends of a growing bone.
            ph = np.zeros_like(s)
            width = max(0.06 / self.cmpp, 0.7)
            for end, on in enumerate(t.phys):
                if on:
                    at = (0.075 * L + 0.2 * rs) if end == 0 else (L - 0.075 * L - 0.2 * rs)
                    ph = ph + np.exp(-np.square((s - at + 0.15 * np.abs(n)) / width))
            keep = 1.0 - 0.6 * np.minimum(ph, 1.0)
            mar, cort = mar * keep, cort * keep
        return cort, mar

    def ell(self, e: _Ell, lesion=None, fracture=None):
        r = max(e.a, e.b) + 1.0
        g = self.box(e.c[0] - r, e.c[0] + r, e.c[1] - r, e.c[1] + r)
        if g is None:
            return
        sl, X, Y = g
        dx, dy = X - np.float32(e.c[0]), Y - np.float32(e.c[1])
        x = dx * np.float32(e.axis[0]) + dy * np.float32(e.axis[1])
        y = dy * np.float32(e.axis[0]) - dx * np.float32(e.axis[1])
        c = min(e.cortex, 0.45 * min(e.a, e.b))
        ai, bi = e.a - c, e.b - c
        if e.p == 2.0:
            q = np.square(x * (1.0 / e.a)) + np.square(y * (1.0 / e.b))
            qi = np.square(x * (1.0 / ai)) + np.square(y * (1.0 / bi))
        else:  # a boxier outline (carpal bones)
            ax, ay = np.abs(x), np.abs(y)
            q = (ax * (1.0 / e.a)) ** e.p + (ay * (1.0 / e.b)) ** e.p
            qi = (ax * (1.0 / ai)) ** e.p + (ay * (1.0 / bi)) ** e.p
        outer = e.depth * np.sqrt(np.maximum(1.0 - q, 0.0))
        inner = (e.depth - c) * np.sqrt(np.maximum(1.0 - qi, 0.0))
        cort = (outer - inner) * MU_CORTEX
        mar = inner * MU_CANCELLOUS
        if fracture is not None:
            f = fracture
            along = x * math.cos(f["phi"]) + y * math.sin(f["phi"]) - f["s"]
            across = -x * math.sin(f["phi"]) + y * math.cos(f["phi"])
            along = along + f["zz_amp"] * np.sin(across * f["zz_freq"] + f["zz_phase"])
            keep = 1.0 - f["depth"] * _line_profile(along, f["w"])
            cort, mar = cort * keep, mar * keep
        self.cort[sl] += cort * np.float32(e.dens * self.cmpp)
        self.marrow[sl] += mar * np.float32(e.dens * self.cmpp)

    def plate(self, p: _Plate):
        pts = p.pts
        g = self.box(pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max())
        if g is None:
            return
        sl, X, Y = g
        # Signed distance inside a convex polygon (vertices in either order).
        centre = pts.mean(axis=0)
        inside = None
        for a, b in zip(pts, np.roll(pts, -1, axis=0)):
            d = _unit(b - a)
            nrm = np.array([-d[1], d[0]])
            if np.dot(centre - a, nrm) < 0:
                nrm = -nrm
            dist = (X - np.float32(a[0])) * np.float32(nrm[0]) + (Y - np.float32(a[1])) * np.float32(nrm[1])
            inside = dist if inside is None else np.minimum(inside, dist)
        edge = max(p.thick * 2.0, 1.0)
        prof = _c01(inside / edge)
        self.cort[sl] += np.sqrt(prof) * np.float32(p.thick * p.dens * self.cmpp * 0.6)
        self.marrow[sl] += prof * np.float32(p.thick * p.dens * self.cmpp * MU_CANCELLOUS)

    def arc(self, a: _Arc):
        angles = np.linspace(a.a0, a.a1, 9)
        pts = a.c[None, :] + a.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        r = a.r + 1
        g = self.box(pts[:, 0].min() - r, pts[:, 0].max() + r, pts[:, 1].min() - r, pts[:, 1].max() + r)
        if g is None:
            return
        sl, X, Y = g
        dx, dy = X - np.float32(a.c[0]), Y - np.float32(a.c[1])
        rho = np.sqrt(np.square(dx) + np.square(dy)) + np.float32(1e-3)
        mid, half = (a.a0 + a.a1) / 2, (a.a1 - a.a0) / 2
        # Fade out at the ends of the arc: cos of the angle from its middle, linearised at the end.
        cosd = (dx * np.float32(math.cos(mid)) + dy * np.float32(math.sin(mid))) / rho
        fade = np.clip(
            (cosd - np.float32(math.cos(half))) * np.float32(a.radius / (math.sin(half) * max(a.r * 2, 1.0))), 0, 1
        )
        d2 = np.square(rho - a.radius)
        outer = np.sqrt(np.maximum(a.r * a.r - d2, 0.0))
        ri = a.r * 0.65
        inner = np.sqrt(np.maximum(ri * ri - d2, 0.0))
        self.cort[sl] += (outer - inner) * fade * np.float32(a.dens * self.cmpp)
        self.marrow[sl] += inner * fade * np.float32(a.dens * self.cmpp * MU_CANCELLOUS)

    # Soft tissue ---------------------------------------------------------------------------

    def soft_tissue(self, s: _Soft):
        if s.kind == "cap":
            r = max(s.r0, s.r1) + 1
            g = self.box(
                min(s.q0[0], s.q1[0]) - r,
                max(s.q0[0], s.q1[0]) + r,
                min(s.q0[1], s.q1[1]) - r,
                max(s.q0[1], s.q1[1]) + r,
            )
            if g is None:
                return
            sl, X, Y = g
            d = s.q1 - s.q0
            L2 = float(d @ d) + 1e-9
            dx, dy = X - np.float32(s.q0[0]), Y - np.float32(s.q0[1])
            tt = np.clip((dx * np.float32(d[0]) + dy * np.float32(d[1])) * np.float32(1.0 / L2), 0.0, 1.0)
            ex, ey = dx - tt * np.float32(d[0]), dy - tt * np.float32(d[1])
            R = s.r0 + (s.r1 - s.r0) * tt
            thick = np.sqrt(np.maximum(np.square(R) - np.square(ex) - np.square(ey), 0.0))
        else:
            r = max(s.r0, s.r1) + 1
            g = self.box(s.q0[0] - r, s.q0[0] + r, s.q0[1] - r, s.q0[1] + r)
            if g is None:
                return
            sl, X, Y = g
            dx, dy = X - np.float32(s.q0[0]), Y - np.float32(s.q0[1])
            x = dx * np.float32(s.axis[0]) + dy * np.float32(s.axis[1])
            y = dy * np.float32(s.axis[0]) - dx * np.float32(s.axis[1])
            q = np.square(x * (1.0 / s.r0)) + np.square(y * (1.0 / s.r1))
            thick = np.float32(s.depth) * np.sqrt(np.maximum(1.0 - q, 0.0))
        np.maximum(self.soft[sl], thick * np.float32(self.cmpp), out=self.soft[sl])

    def chest(self, c, a, b, depth, sign):
        g = self.box(c[0] - a, c[0] + a, c[1] - b, c[1] + b)
        if g is None:
            return
        sl, X, Y = g
        q = np.square((X - np.float32(c[0])) * (1.0 / a)) + np.square((Y - np.float32(c[1])) * (1.0 / b))
        v = np.sqrt(np.maximum(1.0 - q, 0.0)) * np.float32(abs(depth) * self.cmpp)
        if sign == 0.0:  # a lucency in bone (olecranon fossa)
            self.marrow[sl] -= v * 0.25
        else:
            self.extra[sl] += v * np.float32(sign * MU_SOFT)

    def swelling(self, c, r, depth_cm):
        """Extra soft tissue in a round patch, only where there is soft tissue already."""
        g = self.box(c[0] - r, c[0] + r, c[1] - r, c[1] + r)
        if g is None:
            return
        sl, X, Y = g
        q = (np.square(X - np.float32(c[0])) + np.square(Y - np.float32(c[1]))) * np.float32(1.0 / (r * r))
        soft = self.soft[sl]
        inside = np.clip(soft * np.float32(1.0 / (0.25 * float(soft.max()) + 1e-6)), 0.0, 1.0)
        self.extra[sl] += np.sqrt(np.maximum(1.0 - q, 0.0)) * inside * np.float32(depth_cm * MU_SOFT)

    # Casts and metal ---------------------------------------------------------------------------

    def cast(self, segments, thickness, dens, texture):
        for q0, q1, r0, r1 in segments:
            r = max(r0, r1) + thickness + 1
            g = self.box(min(q0[0], q1[0]) - r, max(q0[0], q1[0]) + r, min(q0[1], q1[1]) - r, max(q0[1], q1[1]) + r)
            if g is None:
                continue
            sl, X, Y = g
            d = q1 - q0
            L2 = float(d @ d) + 1e-9
            dx, dy = X - np.float32(q0[0]), Y - np.float32(q0[1])
            tt = (dx * np.float32(d[0]) + dy * np.float32(d[1])) * np.float32(1.0 / L2)
            ends = np.clip(np.minimum(tt, 1.0 - tt) * math.sqrt(L2) / max(thickness, 1.0), 0.0, 1.0)
            tt = _c01(tt)
            ex, ey = dx - tt * np.float32(d[0]), dy - tt * np.float32(d[1])
            d2 = np.square(ex) + np.square(ey)
            ri = r0 + (r1 - r0) * tt
            ro = ri + thickness
            shell = np.sqrt(np.maximum(np.square(ro) - d2, 0.0)) - np.sqrt(np.maximum(np.square(ri) - d2, 0.0))
            val = shell * ends * np.float32(dens * self.cmpp) * (1.0 + texture[sl])
            np.maximum(self.casting[sl], val, out=self.casting[sl])

    def metal_strip(self, q0, q1, half_width, thread=0.0, dens=1.0):
        """A plate, screw, wire or nail: a strip with rounded anti-aliased edges."""
        L = float(np.hypot(*(q1 - q0)))
        if L < 0.5:
            return
        pad = half_width * (1 + thread) + 2
        g = self.box(min(q0[0], q1[0]) - pad, max(q0[0], q1[0]) + pad, min(q0[1], q1[1]) - pad, max(q0[1], q1[1]) + pad)
        if g is None:
            return
        sl, X, Y = g
        u = (q1 - q0) / L
        dx, dy = X - np.float32(q0[0]), Y - np.float32(q0[1])
        s = dx * np.float32(u[0]) + dy * np.float32(u[1])
        n = np.abs(dy * np.float32(u[0]) - dx * np.float32(u[1]))
        hw = half_width
        if thread:
            hw = half_width * (1.0 + thread * (np.abs(np.mod(s * (1.0 / max(half_width * 0.9, 0.8)), 2.0) - 1.0) - 0.5))
        a = _c01(hw + 0.5 - n) * _c01(np.minimum(s, L - s) + 0.5)
        # Thickness through a round rod is largest on its axis.
        val = a * (0.6 + 0.4 * np.sqrt(np.clip(1.0 - np.square(n / (np.maximum(hw, 0.5) + 0.5)), 0.0, 1.0)))
        self.has_metal = True
        np.maximum(self.metal[sl], val * np.float32(dens), out=self.metal[sl])

    def metal_disk(self, c, r, dens=1.0, hole=0.0):
        g = self.box(c[0] - r - 1, c[0] + r + 1, c[1] - r - 1, c[1] + r + 1)
        if g is None:
            return
        sl, X, Y = g
        rho = np.sqrt(np.square(X - np.float32(c[0])) + np.square(Y - np.float32(c[1])))
        a = _c01(r + 0.5 - rho)
        if hole:
            a = a * (1.0 - 0.8 * _c01(hole * r + 0.5 - rho))
        self.has_metal = True
        np.maximum(self.metal[sl], a * np.float32(dens), out=self.metal[sl])


def _line_profile(d, width):
    """A lucent line of ``width`` pixels, area-preserving when it is thinner than a pixel."""
    if width >= 1.0:
        return _c01(width * 0.5 + 0.5 - np.abs(d))
    return width * _c01(1.0 - np.abs(d))


# --------------------------------------------------------------------------------------------
# Findings.
# --------------------------------------------------------------------------------------------

_FRACTURE_SITES = {
    "XR_FINGER": ("ray",),
    "XR_HAND": ("ray",),
    "XR_WRIST": ("radius", "ulna", "scaphoid", "ray"),
    "XR_FOREARM": ("radius", "ulna"),
    "XR_ELBOW": ("radius", "ulna", "humerus", "condyles", "capitulum"),
    "XR_HUMERUS": ("humerus",),
    "XR_SHOULDER": ("humerus", "clavicle", "head", "tuberosity"),
}


class _Field:
    """The collimated field (a convex polygon) on a canvas of ``h`` by ``w`` pixels."""

    def __init__(self, h, w, poly):
        self.h, self.w, self.poly = h, w, np.asarray(poly, float)
        self.full = bool(np.allclose(self.poly, [[0, 0], [w, 0], [w, h], [0, h]]))
        centre = self.poly.mean(axis=0)
        normals, offsets = [], []
        for a, b in zip(self.poly, np.roll(self.poly, -1, axis=0)):
            d = _unit(b - a)
            nrm = np.array([-d[1], d[0]])
            if np.dot(centre - a, nrm) < 0:
                nrm = -nrm
            normals.append(nrm)
            offsets.append(float(nrm @ a))
        self.edges = (np.array(normals), np.array(offsets))
        # Half-planes of the canvas too, for points.
        self.n = np.vstack([self.edges[0], [[1, 0], [-1, 0], [0, 1], [0, -1]]])
        self.off = np.concatenate([self.edges[1], [0, -w, 0, -h]])

    def margin(self, points):
        """How far each point lies inside both the canvas and the field (pixels)."""
        return (np.atleast_2d(np.asarray(points, float)) @ self.n.T - self.off).min(axis=1)

    def mask(self):
        """Coverage of each pixel by the field, anti-aliased."""
        xs = np.arange(self.w, dtype=np.float32)[None, :]
        ys = np.arange(self.h, dtype=np.float32)[:, None]
        inside = None
        for nrm, off in zip(*self.edges):
            dist = xs * np.float32(nrm[0]) + ys * np.float32(nrm[1]) - np.float32(off)
            inside = dist if inside is None else np.minimum(inside, dist)
        return _c01(inside + 0.5)


def _inside(point, field, margin):
    """Is ``point`` inside the canvas and the collimated field, ``margin`` pixels from its edges?"""
    return bool(field.margin(point)[0] >= margin)


def _pick(rng, items):
    return items[int(rng.integers(len(items)))] if items else None


def _tube_point(t: _Tube, frac: float):
    return t.q0 + (t.q1 - t.q0) * frac


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


# Markers --------------------------------------------------------------------------------------


def _glyph_block(text, cell, gap):
    parts = []
    for ch in text:
        bits = _GLYPH_BITS[ch]
        parts.append(np.kron(bits, np.ones((cell, cell), np.float32)))
        parts.append(np.zeros((7 * cell, gap), np.float32))
    return np.concatenate(parts[:-1], axis=1)


def _draw_markers(rng, img, field_box, size, level, paint=True):
    """Burn a lead side marker (and sometimes initials) into a corner of the field.

    Returns whether it brightened any pixel.  With ``paint=False`` it draws the same random
    numbers and leaves ``img`` alone (returning False): the film without its marker.
    """
    h, w = img.shape
    x0, x1, y0, y1 = field_box
    letter = "L" if rng.random() < 0.5 else "R"
    cell = max(1, int(round(size * rng.uniform(0.006, 0.011))))
    block = _glyph_block(letter, cell, cell)
    if rng.random() < 0.6:
        initials = "".join(_INITIALS[int(i)] for i in rng.integers(len(_INITIALS), size=int(rng.integers(2, 4))))
        small = max(1, cell // 2)
        ib = _glyph_block(initials, small, small)
        hh = max(block.shape[0], ib.shape[0])
        pad_a = np.zeros((hh, block.shape[1]), np.float32)
        pad_a[: block.shape[0]] = block
        pad_b = np.zeros((hh, ib.shape[1]), np.float32)
        pad_b[hh - ib.shape[0] :] = ib
        block = np.concatenate([pad_a, np.zeros((hh, cell * 2), np.float32), pad_b], axis=1)
    if rng.random() < 0.35:  # a square lead frame around the marker
        m = cell * 2
        framed = np.zeros((block.shape[0] + 2 * m, block.shape[1] + 2 * m), np.float32)
        framed[m:-m, m:-m] = block
        framed[: max(1, cell // 2)] = 1
        framed[-max(1, cell // 2) :] = 1
        framed[:, : max(1, cell // 2)] = 1
        framed[:, -max(1, cell // 2) :] = 1
        block = framed
    if rng.random() < 0.1:
        block = block[:, ::-1]
    if rng.random() < 0.2:
        block = np.rot90(block, int(rng.integers(1, 4)))
    bh, bw = block.shape
    if bh >= h - 2 or bw >= w - 2:
        return False
    corner = int(rng.integers(4))
    margin = int(round(size * rng.uniform(0.02, 0.08)))
    xa = int(max(x0, 0)) + margin if corner % 2 == 0 else int(min(x1, w)) - margin - bw
    ya = int(max(y0, 0)) + margin if corner < 2 else int(min(y1, h)) - margin - bh
    xa = int(np.clip(xa, 1, w - bw - 1))
    ya = int(np.clip(ya, 1, h - bh - 1))
    if not paint:
        return False
    region = img[ya : ya + bh, xa : xa + bw]
    ink = block * np.float32(level)
    changed = bool((ink > region).any())
    np.maximum(region, ink, out=region)
    return changed


# --------------------------------------------------------------------------------------------
# The picture.
# --------------------------------------------------------------------------------------------

_BLUR = (0.25, 0.9)  # the detector's blur (Gaussian sigma), in pixels at 256 px
_BLUR_TRUNCATE = 2.5


def _camera(rng, limb, study_type, size):
    cam = _CAMERAS[study_type]
    fov = rng.uniform(*cam["fov"])
    a = limb.anchors
    jitter = math.radians(cam["jitter"]) * rng.uniform(-1, 1)
    if study_type == "XR_FINGER":
        centre, axis = a["finger"], -a["finger_axis"]
    elif study_type == "XR_HAND":
        centre, axis = a["hand"], -a["hand_axis"]
    elif study_type == "XR_WRIST":
        centre, axis = a["wrist"] - a["hand_axis"] * 0.8, -a["forearm_axis"]
    elif study_type == "XR_FOREARM":
        centre, axis = a["forearm"], a["forearm_axis"] * (1 if rng.random() < 0.5 else -1)
    elif study_type == "XR_ELBOW":
        centre, axis = a["elbow"] * 0.8 + a["forearm"] * 0.05 + a["humerus"] * 0.15, np.array([0.0, 1.0])
    elif study_type == "XR_HUMERUS":
        centre, axis = a["humerus"], np.array([0.0, 1.0])
    else:
        centre, axis = a["shoulder"], np.array([0.0, 1.0])
        if rng.random() < 0.15:
            jitter += math.pi / 2 * (1 if rng.random() < 0.5 else -1)
    centre = centre + rng.normal(0, 0.06, 2) * fov
    # Rotate ``axis`` onto the image's downward direction (+y), then jitter.
    theta = math.atan2(1.0, 0.0) - math.atan2(axis[1], axis[0]) + jitter
    rot = _rot(theta)
    if rng.random() < 0.5:  # a left limb: mirror
        rot = rot @ np.diag([-1.0, 1.0])
    portrait = rng.random() < cam["portrait"]
    aspect = rng.uniform(0.62, 1.0)
    short = max(16, int(round(size * aspect)))
    h, w = (size, short) if portrait else (short, size)
    scale = size / fov  # pixels per cm
    return rot, scale, centre, h, w


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
      The film with ``markers=False`` differs from this one exactly within this box.
    """
    if finding is not None and finding not in FINDINGS:
        raise ValueError(f"finding must be one of {FINDINGS} or None, got {finding!r}")
    if study_type not in _CAMERAS:
        raise ValueError(f"study_type must be one of {STUDY_TYPES}, got {study_type!r}")
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")

    kind = _view_kind(view, rng)
    young = rng.random() < 0.15
    limb = _build_limb(rng, kind, study_type, young)
    rot, scale, centre, h, w = _camera(rng, limb, study_type, size)
    limb.to_pixels(centre, scale, rot, np.array([w / 2.0, h / 2.0]))
    cmpp = 1.0 / scale
    film = _Film(h, w, cmpp)

    # Collimated field: a rectangle, often rotated, sometimes the whole film.
    if rng.random() < 0.35:
        field_poly = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    else:
        m = rng.uniform(0.0, 0.16, 4) * np.array([w, w, h, h])
        ang = rng.normal(0, 0.06)
        cx, cy = (m[0] + w - m[1]) / 2, (m[2] + h - m[3]) / 2
        hw, hh = (w - m[0] - m[1]) / 2, (h - m[2] - m[3]) / 2
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) @ _rot(ang).T + [cx, cy]
        field_poly = corners
    field = _Field(h, w, field_poly)

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
        seg = limb.casts[
            {
                "XR_FINGER": "finger",
                "XR_HAND": "hand",
                "XR_WRIST": "hand",
                "XR_FOREARM": "forearm",
                "XR_ELBOW": "arm",
                "XR_HUMERUS": "arm",
                "XR_SHOULDER": "arm",
            }[study_type]
        ]
        plaster = frng.random() < 0.5
        # Texture on the scale of the film (like the findings' sizes), so that it shows at 64 px.
        amount = FINDING_STRENGTH["cast_texture"]
        period = max(frng.uniform(*FINDING_STRENGTH["cast_texture_period"]) * size, 2.5)
        if plaster:  # mottled
            mottle = ndimage.gaussian_filter(frng.standard_normal((h, w), dtype=np.float32), period / 3.0, truncate=2.5)
            texture = mottle * np.float32(amount / (mottle.std() + 1e-6))
        else:  # fibreglass: a woven mesh
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ang = frng.uniform(0, math.pi)
            a1 = np.cos(ang) * xx + np.sin(ang) * yy
            a2 = -np.sin(ang) * xx + np.cos(ang) * yy
            texture = amount * 1.4 * (np.sin(a1 * (2 * math.pi / period)) * np.sin(a2 * (2 * math.pi / period)))
        thickness = frng.uniform(*_CAST_THICKNESS)
        thick = thickness * (0.5 if study_type == "XR_FINGER" else 1.0) / cmpp
        density_range = _CAST_DENSITY["plaster" if plaster else "fibreglass"]
        density = frng.uniform(*density_range)
        strengths += [_unit_interval(thickness, _CAST_THICKNESS), _unit_interval(density, density_range)]
        film.cast(seg, thick, density, texture.astype(np.float32))
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

    # Exposure: attenuation to film density.
    bone = film.cort + film.marrow * (1.0 + np.float32(rng.uniform(0.05, 0.14)) * tex)
    soft = MU_SOFT * film.soft + np.maximum(film.extra, 0)
    att = soft + np.maximum(bone, 0)
    # Tone curve through three anchors: air, the thickest soft tissue, the densest bone.  Every
    # film is windowed differently, as by a technologist or the scanner's auto-exposure.
    step = max(1, min(h, w) // 48)
    sub_soft, sub_att = soft[::step, ::step], att[::step, ::step]
    soft_ref = float(np.percentile(sub_soft, 97)) + 1e-3
    bone_ref = max(float(np.percentile(sub_att, 99.7)), soft_ref * 1.6)
    bg = rng.uniform(0.0, 0.1)
    soft_level = rng.uniform(0.28, 0.5)
    bone_level = rng.uniform(0.7, 0.86)  # bone stays below white: only metal burns out
    knee = rng.uniform(0.1, 0.35)
    xs = [0.0, soft_ref * knee, soft_ref, bone_ref, bone_ref * 1.6]
    ys = [bg, bg + (soft_level - bg) * knee * rng.uniform(1.0, 1.8), soft_level, bone_level, bone_level + 0.07]
    gamma = math.exp(rng.normal(0.0, 0.15))
    # The exposure is set for the limb; a cast on top of it only adds density.
    if finding == "cast":
        att += film.casting
    # The tone curve and gamma as a look-up table (much faster than per-pixel interp and pow).
    top = float(att.max()) + 1e-6
    lut = np.power(np.interp(np.linspace(0.0, top, 4097), xs, ys), gamma).astype(np.float32)
    img = lut[(att * np.float32(4096.0 / top) + np.float32(0.5)).astype(np.int32)]
    if film.has_metal:  # metal burns out to white
        img = np.minimum(img + film.metal * np.float32(MU_METAL), np.float32(1.0))
    # Heel effect: a gentle gradient across the film.
    ga = rng.uniform(0, 2 * math.pi)
    gx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :] * np.float32(math.cos(ga))
    gy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None] * np.float32(math.sin(ga))
    img *= 1.0 + np.float32(rng.uniform(0.0, 0.25)) * (gx + gy)

    # Lead markers are burnt in before the detector blur.
    fx0, fy0 = field_poly.min(axis=0)
    fx1, fy1 = field_poly.max(axis=0)
    bare = None  # the film without its marker, kept to locate the marker in the written image
    if rng.random() < 0.85:
        before = img.copy() if markers and return_info else None
        if _draw_markers(rng, img, (fx0, fx1, fy0, fy1), size, rng.uniform(0.78, 0.95), paint=markers):
            bare = before

    # The detector: blur, noise, clipping behind metal and the collimated field.  Its random
    # numbers are drawn first, so that a film can be developed twice (with and without marker).
    blur = rng.uniform(*_BLUR) * max(size / 256.0, 0.5)
    sigma = rng.uniform(0.008, 0.045)
    noise = rng.standard_normal((h, w), dtype=np.float32)
    metal = None
    if film.has_metal:  # the detector clips behind metal: white without noise
        behind = ndimage.gaussian_filter(film.metal, blur, truncate=_BLUR_TRUNCATE)
        metal = _c01(behind * np.float32(MU_METAL) - np.float32(2.0))
    mask = outside = None
    if not field.full:  # outside the collimated field: unexposed, black (or, on some films, light)
        mask = field.mask()
        outside = rng.uniform(0.65, 0.85) if rng.random() < 0.08 else rng.uniform(0.0, 0.03)

    def develop(film_density):
        out = ndimage.gaussian_filter(film_density, blur, truncate=_BLUR_TRUNCATE)
        out += noise * (np.float32(sigma) * np.sqrt(_c01(out) + 0.05))
        if metal is not None:
            out = np.maximum(out, metal)
        if mask is not None:
            out = out * mask + np.float32(outside) * (1.0 - mask)
        return (_c01(out) * 255.0 + 0.5).astype(np.uint8)

    pixels = develop(img)
    if not return_info:
        return pixels
    marker_box = None
    if bare is not None:
        changed = develop(bare) != pixels
        if changed.any():
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            marker_box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    info = {
        "projection": kind,
        "finding": finding,
        "conspicuity": float(np.mean(strengths)) if strengths else (0.0 if finding else math.nan),
        "hardware": finding == "hardware",
        "cast": finding == "cast",
        "marker": marker_box is not None,
        "marker_box": marker_box,
    }
    return pixels, info
