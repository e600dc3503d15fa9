"""The film: what the X-rays record of the limb, from attenuation to 8-bit pixels.

:class:`_Film` accumulates, pixel by pixel, the path lengths through soft tissue, cortex, marrow,
casts and metal of the shapes of :mod:`.anatomy` (and of the findings drawn into them).  X-ray
attenuation adds up along the beam, so overlapping bones look brighter, as on film.  The rest
varies from image to image, as on real films, and is unrelated to the label: the collimated
field (:func:`_collimate`), the burnt-in lead markers (:func:`_draw_markers`), the exposure
(:func:`_expose`: tone curve, gamma, heel effect) and the detector (:func:`_detector`: blur,
noise, clipping behind metal, unexposed film outside the field).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .anatomy import _Arc, _c01, _Ell, _Plate, _rot, _Soft, _Tube, _unit

# Linear attenuation per centimetre (arbitrary but consistent units).
MU_SOFT = 0.1
MU_CORTEX = 1.0
MU_MARROW = 0.12  # fatty marrow of a shaft
MU_CANCELLOUS = 0.5  # trabecular bone of the ends
MU_METAL = 40.0


_BLUR = (0.25, 0.9)  # the detector's blur (Gaussian sigma), in pixels at 256 px
_BLUR_TRUNCATE = 2.5


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
# The collimated field.
# --------------------------------------------------------------------------------------------


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


def _collimate(rng, h, w) -> _Field:
    """The collimated field: a rectangle, often rotated, sometimes the whole film."""
    if rng.random() < 0.35:
        field_poly = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    else:
        m = rng.uniform(0.0, 0.16, 4) * np.array([w, w, h, h])
        ang = rng.normal(0, 0.06)
        cx, cy = (m[0] + w - m[1]) / 2, (m[2] + h - m[3]) / 2
        hw, hh = (w - m[0] - m[1]) / 2, (h - m[2] - m[3]) / 2
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) @ _rot(ang).T + [cx, cy]
        field_poly = corners
    return _Field(h, w, field_poly)


# --------------------------------------------------------------------------------------------
# Lead markers.
# --------------------------------------------------------------------------------------------


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
# Exposure and the detector.
# --------------------------------------------------------------------------------------------


def _expose(rng, film: _Film, tex, cast: bool):
    """Film density (float32, 0 to 1 before the detector) from the attenuation accumulated in ``film``.

    ``tex`` modulates the density of bone (trabecular texture); ``cast`` adds the cast's density
    on top of an exposure set for the limb.
    """
    h, w = film.h, film.w
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
    if cast:
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
    return img


def _detector(rng, film: _Film, field: _Field, size):
    """The detector: blur, noise, clipping behind metal and the collimated field.

    Its random numbers are drawn here, at once, and the returned ``develop(film_density)`` turns a
    film density into ``uint8`` pixels, so that a film can be developed twice (with and without
    its marker) with the same blur and noise.
    """
    h, w = film.h, film.w
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

    develop.radius = int(_BLUR_TRUNCATE * blur + 0.5)  # how far the blur carries a pixel (SciPy's kernel)
    return develop
