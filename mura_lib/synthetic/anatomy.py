"""The upper limb in centimetres, and the camera that frames it.

A whole right upper limb is laid out in centimetres (:func:`_build_limb`): shoulder girdle, ribs,
humerus, radius and ulna, carpus, metacarpals and phalanges, with soft tissue around them.  The
projection (``view``: AP/PA, lateral, oblique) changes the pose: the elbow flexes, the forearm
bones and the rays of the hand superimpose, the scapula turns into a "Y".  Bones are solid
shapes: tubes (:class:`_Tube`) with a dense cortex, a lucent medulla and flared, cancellous ends;
ellipsoids (:class:`_Ell`) for carpal bones, the humeral head and the condyles; flat plates
(:class:`_Plate`) for the scapula; arcs (:class:`_Arc`) for ribs.

A camera per study type (:data:`_CAMERAS`, :func:`_camera`) picks the region, field of view,
rotation and left/right mirroring; :meth:`_Limb.to_pixels` then moves every shape to pixels.
"""

from __future__ import annotations

import math

import numpy as np

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


def _tube_point(t: _Tube, frac: float):
    return t.q0 + (t.q1 - t.q0) * frac


# --------------------------------------------------------------------------------------------
# The camera.
# --------------------------------------------------------------------------------------------


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
