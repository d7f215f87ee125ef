"""Torso phantoms: a patient's anatomy as smooth 3-D shapes, and a voxeliser that turns it into HU + labels.

Coordinates are millimetres in the patient frame, written ``(z, y, x)`` like the arrays:

* ``z`` grows from the head to the feet (0 = the lower neck, where a chest CT starts; the head is at z < 0),
* ``y`` grows from anterior to posterior (0 = the middle of the chest),
* ``x`` grows from the patient's right to the patient's left (0 = midline).

So an axial slice ``ct[k]`` shown with ``imshow`` has anterior at the top and the patient's right on the viewer's
left, the radiological convention. Every volume in the world is an array ``(D, H, W) = (z, y, x)`` with
``spacing = (sz, sy, sx)`` in mm, always in the array's axis order.

The anatomy is a list of primitives (ellipsoids, tubes whose centre and radius follow the z axis, elliptic
cylinders) painted in a fixed order, later shapes over earlier ones, into a label map. Each label has an HU value
(with a little per-patient variation); a slight blur gives partial-volume edges. The same primitives, voxelised on a
chest grid and summed along a ray, make the chest X-rays (:mod:`rrg_lite.world.xray`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

#: Fine structure labels of the label map (index = value in ``labelmap``).
STRUCTURES: tuple[str, ...] = (
    "background", "fat", "soft_tissue", "breast", "rib", "sternum", "spine", "pelvic_bone", "skull", "brain",
    "lung_right", "lung_left", "mediastinum", "heart", "aorta", "esophagus", "trachea", "bronchi", "thyroid",
    "liver", "gallbladder", "stomach", "spleen", "kidney_right", "kidney_left", "pancreas", "bowel", "bladder",
    "pleural_fluid", "pericardial_fluid", "stomach_gas",
)
LABEL = {name: i for i, name in enumerate(STRUCTURES)}

#: Mean HU of each structure (non-contrast CT). Per-patient jitter is added in :func:`sample_anatomy`.
BASE_HU: dict[str, float] = {
    "background": -1000.0, "fat": -100.0, "soft_tissue": 45.0, "breast": -30.0, "rib": 650.0, "sternum": 450.0,
    "spine": 400.0, "pelvic_bone": 500.0, "skull": 900.0, "brain": 35.0, "lung_right": -850.0,
    "lung_left": -850.0, "mediastinum": -60.0, "heart": 45.0, "aorta": 45.0, "esophagus": 35.0,
    "trachea": -1000.0, "bronchi": -1000.0, "thyroid": 90.0, "liver": 60.0, "gallbladder": 8.0, "stomach": 25.0,
    "spleen": 48.0, "kidney_right": 32.0, "kidney_left": 32.0, "pancreas": 40.0, "bowel": 20.0, "bladder": 5.0,
    "pleural_fluid": 12.0, "pericardial_fluid": 10.0, "stomach_gas": -1000.0,
}

#: The z range (mm) that each scan type covers for a patient of z-scale 1.
SCAN_RANGES: dict[str, tuple[float, float]] = {
    "chest": (-10.0, 360.0),            # CT-RATE: lower neck to upper abdomen
    "cap": (-10.0, 650.0),              # AMOS-MM: chest, abdomen, pelvis
    "whole_body": (-330.0, 700.0),      # PET/CT: skull vertex to upper thigh
    "xray_chest": (-20.0, 330.0),       # what a chest radiograph covers
}


# ---------------------------------------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape (D, H, W)``, ``spacing (sz, sy, sx)`` mm, ``origin`` = mm of voxel (0, 0, 0)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axis(self, i: int) -> np.ndarray:
        """Voxel-centre coordinates (mm) along axis ``i`` (cached: grids are immutable)."""
        cache = self.__dict__.setdefault("_axes", {})
        if i not in cache:
            cache[i] = (self.origin[i] + np.arange(self.shape[i]) * self.spacing[i]).astype(np.float32)
        return cache[i]

    def to_index(self, mm) -> np.ndarray:
        return (np.asarray(mm, dtype=np.float64) - np.asarray(self.origin)) / np.asarray(self.spacing)

    def to_mm(self, index) -> np.ndarray:
        return np.asarray(self.origin) + np.asarray(index, dtype=np.float64) * np.asarray(self.spacing)

    def bbox(self, center, half) -> tuple[slice, slice, slice] | None:
        """Index slices covering ``center ± half`` (mm), clipped to the grid; None if outside."""
        lo = np.floor(self.to_index(np.asarray(center) - np.asarray(half))).astype(int)
        hi = np.ceil(self.to_index(np.asarray(center) + np.asarray(half))).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    @property
    def affine_lpi(self) -> np.ndarray:
        """4×4 NIfTI (RAS+) affine of the array transposed to (x, y, z): axes point Left, Posterior, Inferior."""
        sz, sy, sx = self.spacing
        z0, y0, x0 = self.origin
        a = np.diag([-sx, -sy, -sz, 1.0])
        a[:3, 3] = [-x0, -y0, -z0]
        return a


def make_grid(z_range: tuple[float, float], depth: int, size: int, fov_mm: float) -> Grid:
    """A grid of ``depth`` slices over ``z_range`` and ``size × size`` pixels over a ``fov_mm`` square."""
    z0, z1 = z_range
    sz = (z1 - z0) / depth
    s = fov_mm / size
    return Grid((depth, size, size), (float(sz), float(s), float(s)),
                (float(z0 + sz / 2), float(-fov_mm / 2 + s / 2), float(-fov_mm / 2 + s / 2)))


# ---------------------------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Ellipsoid:
    """Points with ((z-cz)/rz)² + (y'/ry)² + (x'/rx)² ≤ 1, where (y', x') is (y, x) rotated by ``yaw`` (radians)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    yaw: float = 0.0

    def scaled(self, f: float | tuple) -> "Ellipsoid":
        f = np.broadcast_to(np.asarray(f, dtype=float), (3,))
        return replace(self, radii=tuple(float(r * k) for r, k in zip(self.radii, f)))

    def half_extent(self) -> np.ndarray:
        r = max(self.radii[1], self.radii[2])
        return np.array([self.radii[0], r, r])

    def radius2(self, grid: Grid, box) -> np.ndarray:
        """Normalised squared radius on the voxels of ``box`` (≤ 1 inside)."""
        z = grid.axis(0)[box[0]] - self.center[0]
        y = grid.axis(1)[box[1]] - self.center[1]
        x = grid.axis(2)[box[2]] - self.center[2]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        yy = (c * y[:, None] - s * x[None, :]) / self.radii[1]
        xx = (s * y[:, None] + c * x[None, :]) / self.radii[2]
        return (z[:, None, None] / self.radii[0]) ** 2 + (yy ** 2 + xx ** 2)[None]

    def mask(self, grid: Grid):
        box = grid.bbox(self.center, self.half_extent())
        if box is None:
            return None, None
        return box, self.radius2(grid, box) <= 1.0

    def occupancy(self, grid: Grid, supersample: int = 3):
        """Fraction of each voxel inside the ellipsoid (partial volume), by ``supersample``³ sub-samples."""
        box = grid.bbox(self.center, self.half_extent() + np.asarray(grid.spacing))
        if box is None:
            return None, None
        n = supersample
        offs = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32)
        # sub-sample coordinates of every voxel in the box, all at once: axis length = voxels × n
        z = (grid.axis(0)[box[0]][:, None] + offs[None] * grid.spacing[0]).ravel() - self.center[0]
        y = (grid.axis(1)[box[1]][:, None] + offs[None] * grid.spacing[1]).ravel() - self.center[1]
        x = (grid.axis(2)[box[2]][:, None] + offs[None] * grid.spacing[2]).ravel() - self.center[2]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        yy = (c * y[:, None] - s * x[None, :]) / self.radii[1]
        xx = (s * y[:, None] + c * x[None, :]) / self.radii[2]
        inside = ((z[:, None, None] / self.radii[0]) ** 2 + (yy ** 2 + xx ** 2)[None]) <= 1.0
        d, h, w = (b.stop - b.start for b in box)
        frac = inside.reshape(d, n, h, n, w, n).mean(axis=(1, 3, 5), dtype=np.float32)
        return box, frac


@dataclass
class Tube:
    """An elliptic tube along z: centre (y, x) and radii (ry, rx) interpolated between knots at ``zs``."""

    zs: tuple[float, ...]
    centers: tuple[tuple[float, float], ...]
    radii: tuple[tuple[float, float], ...]

    def mask(self, grid: Grid):
        z = grid.axis(0)
        zs = np.asarray(self.zs)
        k = np.nonzero((z >= zs.min()) & (z <= zs.max()))[0]
        if len(k) == 0:
            return None, None
        zk = z[k]
        cy = np.interp(zk, zs, [c[0] for c in self.centers])
        cx = np.interp(zk, zs, [c[1] for c in self.centers])
        ry = np.interp(zk, zs, [r[0] for r in self.radii])
        rx = np.interp(zk, zs, [r[1] for r in self.radii])
        # restrict the in-plane work to the tube's bounding rectangle
        lo = grid.to_index((0, (cy - ry).min(), (cx - rx).min()))
        hi = grid.to_index((0, (cy + ry).max(), (cx + rx).max()))
        y0, x0 = max(0, int(np.floor(lo[1]))), max(0, int(np.floor(lo[2])))
        y1, x1 = min(grid.shape[1], int(np.ceil(hi[1])) + 1), min(grid.shape[2], int(np.ceil(hi[2])) + 1)
        if y1 <= y0 or x1 <= x0:
            return None, None
        y, x = grid.axis(1)[y0:y1], grid.axis(2)[x0:x1]
        inside = (((y[None, :, None] - cy[:, None, None]) / ry[:, None, None]) ** 2
                  + ((x[None, None, :] - cx[:, None, None]) / rx[:, None, None]) ** 2) <= 1.0
        return (slice(int(k[0]), int(k[-1]) + 1), slice(y0, y1), slice(x0, x1)), inside


@dataclass
class Shell:
    """The points of ``outer`` that are not in ``inner`` (a bone cortex, a pleural rim, a fluid layer)."""

    outer: Ellipsoid
    inner: Ellipsoid

    def mask(self, grid: Grid):
        box, m = self.outer.mask(grid)
        if box is None:
            return None, None
        return box, m & (self.inner.radius2(grid, box) > 1.0)


@dataclass
class Ribs:
    """Rib slabs: every ``period`` mm of z between ``z0`` and ``z1``, a ring between two fractions of the body."""

    z0: float
    z1: float
    period: float
    thickness: float
    body: "Tube"
    inner: float = 0.84
    outer: float = 0.93

    def mask(self, grid: Grid):
        z = grid.axis(0)
        phase = np.mod(z - self.z0, self.period)
        # a voxel slab of thickness sz sees a rib if the rib band overlaps it
        hit = (z >= self.z0) & (z <= self.z1) & (phase < self.thickness + 0.25 * grid.spacing[0])
        k = np.nonzero(hit)[0]
        if len(k) == 0:
            return None, None
        zs = np.asarray(self.body.zs)
        zk = z[k]
        cy = np.interp(zk, zs, [c[0] for c in self.body.centers])[:, None, None]
        ry = np.interp(zk, zs, [r[0] for r in self.body.radii])[:, None, None]
        rx = np.interp(zk, zs, [r[1] for r in self.body.radii])[:, None, None]
        y, x = grid.axis(1)[None, :, None], grid.axis(2)[None, None, :]
        r = np.sqrt(((y - cy) / ry) ** 2 + (x / rx) ** 2)
        ring = (r >= self.inner) & (r <= self.outer) & ~((y < cy) & (np.abs(x) < 0.25 * rx))  # costal cartilage gap
        full = np.zeros((len(k), grid.shape[1], grid.shape[2]), bool)
        full[:] = ring
        out = np.zeros((grid.shape[0], grid.shape[1], grid.shape[2]), bool)
        out[k] = full
        return (slice(None), slice(None), slice(None)), out


# ---------------------------------------------------------------------------------------------------------------
# Anatomy
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Anatomy:
    """One patient's anatomy: primitives in paint order plus the few levels that findings and reports use.

    parts:     list of (structure, primitive, only_on) painted in order; ``only_on`` restricts painting to voxels
               that currently hold one of those structures (None = anywhere).
    hu:        structure → HU for this patient.
    organs:    structure → its main primitive (findings read centres and radii from here).
    levels:    named z levels in mm (lung apex, carina, diaphragm, ...).
    sex:       "F" or "M" (breast size, for the breast region).
    """

    parts: list = field(default_factory=list)
    hu: dict = field(default_factory=dict)
    organs: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)
    sex: str = "M"
    vessels: list = field(default_factory=list)

    def copy(self) -> "Anatomy":
        """A copy whose part list and dicts can be changed (primitives are replaced, never mutated)."""
        return Anatomy(parts=list(self.parts), hu=dict(self.hu), organs=dict(self.organs), levels=dict(self.levels),
                       sex=self.sex, vessels=self.vessels)


def sample_anatomy(rng: np.random.Generator, size_jitter: float = 0.08) -> Anatomy:
    """Draw one patient: body habitus, organ sizes and positions (each ± ``size_jitter`` relative)."""
    sex = "F" if rng.random() < 0.5 else "M"
    wx = rng.uniform(0.88, 1.08)    # body width scale
    wy = rng.uniform(0.88, 1.08)    # body depth scale
    sz = rng.uniform(0.94, 1.06)    # height scale (z)
    fat = rng.uniform(8.0, 28.0)    # subcutaneous fat thickness, mm

    def j(v):  # jitter a size
        return float(v * (1.0 + rng.uniform(-size_jitter, size_jitter)))

    def p(v, d=4.0):  # jitter a position
        return float(v + rng.uniform(-d, d))

    def Z(v):
        return float(v * sz)

    an = Anatomy(sex=sex)
    an.hu = {k: float(v + (rng.normal(0, 15) if v > -900 else 0.0)) for k, v in BASE_HU.items()}
    an.hu["lung_right"] = an.hu["lung_left"] = float(rng.uniform(-880, -820))

    # body outline: semi-axes (ry, rx) by z; a head on top for whole-body scans
    zs = (Z(-150), Z(-15), Z(10), Z(40), Z(300), Z(480), Z(720))
    radii = ((55 * wy, 60 * wx), (58 * wy, 65 * wx), (105 * wy, 150 * wx), (115 * wy, 165 * wx),
             (118 * wy, 158 * wx), (115 * wy, 162 * wx), (110 * wy, 160 * wx))
    centers = tuple((0.0, 0.0) for _ in zs)
    body = Tube(zs, centers, radii)
    inner = Tube(zs, centers, tuple((max(ry - fat, 20), max(rx - fat, 20)) for ry, rx in radii))
    an.organs["body"] = body
    an.levels.update(lung_apex=Z(25), carina=Z(135), diaphragm=Z(265), kidney=Z(390), pelvis=Z(480),
                     body_ry=118 * wy, body_rx=165 * wx, z_scale=sz)

    parts = an.parts
    parts.append(("fat", body, None))
    parts.append(("soft_tissue", inner, None))
    head = Ellipsoid((Z(-235), 0.0, 0.0), (j(100), j(95) * wy, j(78) * wx))
    parts.append(("soft_tissue", head, None))
    parts.append(("skull", Ellipsoid(head.center, tuple(r - 6 for r in head.radii)), None))
    an.organs["brain"] = Ellipsoid(head.center, tuple(r - 14 for r in head.radii))
    parts.append(("brain", an.organs["brain"], None))

    # breasts sit on the anterior chest wall, outside the muscle
    bsize = rng.uniform(0.9, 1.3) if sex == "F" else rng.uniform(0.35, 0.55)
    for side in (-1, 1):
        br = Ellipsoid((Z(175), -115 * wy + 5, side * 75 * wx), (j(50), 38 * bsize, j(55)))
        an.organs[f"breast_{'right' if side < 0 else 'left'}"] = br
        parts.append(("breast", br, ("background", "fat")))

    parts.append(("rib", Ribs(Z(20), Z(290), 24 * sz, 9.0, body), None))
    an.organs["sternum"] = Tube((Z(55), Z(235)), ((-103 * wy, 0.0), (-108 * wy, 0.0)), ((9, 16), (9, 14)))
    parts.append(("sternum", an.organs["sternum"], None))

    # lungs, then the mediastinum and heart that indent them, then vessels and airways
    rl = Ellipsoid((Z(p(150)), p(8), p(-72) * wx), (j(128) * sz, j(80) * wy, j(58) * wx))
    ll = Ellipsoid((Z(p(160)), p(8), p(74) * wx), (j(130) * sz, j(80) * wy, j(54) * wx))
    an.organs["lung_right"], an.organs["lung_left"] = rl, ll
    parts += [("lung_right", rl, None), ("lung_left", ll, None)]
    an.levels["lung_apex"] = min(rl.center[0] - rl.radii[0], ll.center[0] - ll.radii[0])
    med = Ellipsoid((Z(140), -15.0 * wy, 0.0), (j(115) * sz, 50 * wy, j(26) * wx))
    an.organs["mediastinum"] = med
    parts.append(("mediastinum", med, None))
    heart = Ellipsoid((Z(p(205)), p(-30) * wy, p(18) * wx), (j(52) * sz, j(48) * wy, j(60) * wx), yaw=0.45)
    an.organs["heart"] = heart
    parts.append(("heart", heart, None))
    aorta = Tube((Z(100), Z(150), Z(300), Z(470), Z(500)),
                 ((0.0, 10.0), (35 * wy, 25.0), (42 * wy, 18.0), (30 * wy, 8.0), (30 * wy, 8.0)),
                 ((13, 13), (12, 12), (11, 11), (10, 10), (9, 9)))
    asc = Tube((Z(100), Z(180)), ((-5 * wy, 5.0), (-22 * wy, 5.0)), ((15, 15), (15, 15)))
    an.organs["aorta"], an.organs["aorta_ascending"] = aorta, asc
    parts += [("aorta", aorta, None), ("aorta", asc, None)]
    eso = Tube((Z(-120), Z(150), Z(270), Z(295)), ((10.0, 4.0), (25 * wy, 8.0), (20 * wy, 20.0), (0.0, 45.0)),
               ((7, 8), (7, 8), (7, 8), (9, 10)))
    an.organs["esophagus"] = eso
    parts.append(("esophagus", eso, None))
    trachea = Tube((Z(-140), Z(an.levels["carina"] / sz)), ((-25 * wy, 0.0), (-5 * wy, 0.0)), ((8, 9), (9, 10)))
    an.organs["trachea"] = trachea
    parts.append(("trachea", trachea, None))
    c = an.levels["carina"]
    for side in (-1, 1):
        br = Tube((c - 5, c + 45 * sz), ((-5 * wy, side * 6.0), (0.0, side * 45 * wx)), ((6, 6), (5, 5)))
        an.organs[f"bronchus_{'right' if side < 0 else 'left'}"] = br
        parts.append(("bronchi", br, None))
    for side in (-1, 1):
        th = Ellipsoid((Z(p(28, 3)), -30 * wy, side * 17.0), (j(22), j(10), j(9)))
        an.organs[f"thyroid_{'right' if side < 0 else 'left'}"] = th
        parts.append(("thyroid", th, None))

    # abdomen: bowel first, then the solid organs over it; the liver dome makes the right hemidiaphragm
    bowel = Ellipsoid((Z(470), -10 * wy, 0.0), (j(95) * sz, 75 * wy, j(115) * wx))
    parts.append(("bowel", bowel, ("soft_tissue",)))
    an.organs["bowel"] = bowel
    liver = Ellipsoid((Z(p(330)), p(5) * wy, p(-50) * wx), (j(80) * sz, j(88) * wy, j(92) * wx))
    liver_l = Ellipsoid((Z(305), -35 * wy, 25 * wx), (j(40) * sz, j(45) * wy, j(55) * wx))
    an.organs["liver"], an.organs["liver_left"] = liver, liver_l
    parts += [("liver", liver, None), ("liver", liver_l, None)]
    an.levels["diaphragm"] = liver.center[0] - liver.radii[0]
    gb = Ellipsoid((Z(p(365)), -40 * wy, -58 * wx), (j(28), j(15), j(15)))
    stomach = Ellipsoid((Z(p(305)), -15 * wy, 72 * wx), (j(50) * sz, j(42) * wy, j(38) * wx))
    gas = Ellipsoid((stomach.center[0] - 25, stomach.center[1] - 18, stomach.center[2]), (15, 12, 18))
    spleen = Ellipsoid((Z(p(315)), 55 * wy, 100 * wx), (j(50) * sz, j(35) * wy, j(24) * wx), yaw=-0.4)
    kr = Ellipsoid((Z(p(405)), 58 * wy, -68 * wx), (j(50) * sz, j(24) * wy, j(26) * wx), yaw=0.3)
    kl = Ellipsoid((Z(p(390)), 58 * wy, 68 * wx), (j(50) * sz, j(24) * wy, j(26) * wx), yaw=-0.3)
    pancreas = Ellipsoid((Z(p(372)), 18 * wy, 22 * wx), (j(14), j(14), j(62) * wx), yaw=0.25)
    bladder = Ellipsoid((Z(p(610)), -35 * wy, 0.0), (j(35), j(35), j(45)))
    for name, shape in (("gallbladder", gb), ("stomach", stomach), ("spleen", spleen), ("kidney_right", kr),
                        ("kidney_left", kl), ("pancreas", pancreas), ("bladder", bladder)):
        an.organs[name] = shape
        parts.append((name, shape, None))
    parts.append(("stomach_gas", gas, ("stomach",)))
    an.organs["stomach_gas"] = gas

    # bones last (they are never covered): spine, pelvis
    for zc in np.arange(Z(-125), Z(560), 28 * sz):
        parts.append(("spine", Ellipsoid((float(zc), 75 * wy, 0.0), (11 * sz, 17.0, 19.0)), None))
    for side in (-1, 1):
        ilium = Ellipsoid((Z(520), 40 * wy, side * 100 * wx), (55, 55, 28), yaw=side * 0.5)
        parts.append(("pelvic_bone", Shell(ilium, ilium.scaled(0.78)), None))
        parts.append(("pelvic_bone", Ellipsoid((Z(640), 0.0, side * 95 * wx), (24, 24, 24)), None))
    an.organs["spine"] = Tube((Z(-125), Z(560)), ((75 * wy, 0.0), (75 * wy, 0.0)), ((17, 19), (17, 19)))

    # pulmonary vessels: short bright segments fanning out from each hilum (lung texture on CT and X-ray)
    for side, lung in ((-1, rl), (1, ll)):
        hilum = np.array([c + 30, 0.0, side * 35 * wx])
        for _ in range(14):
            d = rng.normal(size=3)
            d[2] = side * abs(d[2]) + side * 0.5
            d /= np.linalg.norm(d)
            length = rng.uniform(50, 110)
            an.vessels.append((side, hilum.copy(), d, length))
    return an


def paint(anatomy: Anatomy, grid: Grid) -> np.ndarray:
    """Voxelise the anatomy: uint8 label map (D, H, W), values index :data:`STRUCTURES`."""
    labels = np.zeros(grid.shape, np.uint8)
    for name, shape, only_on in anatomy.parts:
        box, m = shape.mask(grid)
        if box is None:
            continue
        view = labels[box]
        if only_on is not None:
            allowed = np.isin(view, [LABEL[s] for s in only_on])
            m = m & allowed
        view[m] = LABEL[name]
    return labels


def hu_from_labels(anatomy: Anatomy, labels: np.ndarray) -> np.ndarray:
    """HU per voxel from the label map (before lesions, vessels, blur and noise)."""
    lut = np.array([anatomy.hu[s] for s in STRUCTURES], np.float32)
    return lut[labels]


def add_vessels(anatomy: Anatomy, grid: Grid, hu: np.ndarray, labels: np.ndarray, amplitude: float = 300.0,
                exclude: np.ndarray | None = None) -> None:
    """Draw pulmonary vessels (in place): points along each vessel get brighter, only inside the lungs."""
    if not anatomy.vessels:
        return
    step = min(grid.spacing) * 0.7
    pts, fade = [], []
    for side, start, direction, length in anatomy.vessels:
        t = np.arange(int(length / step)) * step
        pts.append(start[None] + t[:, None] * direction[None])
        fade.append(1.0 - t / length)
    pts, fade = np.concatenate(pts), np.concatenate(fade)
    idx = np.rint(grid.to_index(pts)).astype(np.int64)
    ok = np.all((idx >= 0) & (idx < np.asarray(grid.shape)), axis=1)
    idx, fade = idx[ok], fade[ok]
    flat = np.ravel_multi_index(idx.T, grid.shape)
    # one contribution per voxel: the strongest (closest to its hilum)
    order = np.lexsort((-fade, flat))
    flat, fade = flat[order], fade[order]
    first = np.ones(len(flat), bool)
    first[1:] = flat[1:] != flat[:-1]
    flat, fade = flat[first], fade[first]
    lab = labels.ravel()[flat]
    sel = (lab == LABEL["lung_right"]) | (lab == LABEL["lung_left"])
    if exclude is not None:
        sel &= ~exclude.ravel()[flat]
    hu.reshape(-1)[flat[sel]] += amplitude * fade[sel].astype(np.float32)


def finish_ct(hu: np.ndarray, rng: np.random.Generator, noise_hu: float, blur_vox: float = 0.5) -> np.ndarray:
    """Partial-volume blur, then scanner noise; clipped to the CT range; float32."""
    if blur_vox > 0:
        hu = ndimage.gaussian_filter(hu, sigma=blur_vox, mode="nearest")
    if noise_hu > 0:
        hu = hu + rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    return np.clip(hu, -1024.0, 3071.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------------------------
def _any(labels: np.ndarray, names) -> np.ndarray:
    return np.isin(labels, [LABEL[n] for n in names])


def region_masks(labels: np.ndarray, diaphragm_index: int) -> dict[str, np.ndarray]:
    """The ten RadGenome/Reg2RG regions as bool (D, H, W) masks (regions may be empty, e.g. breast in a CXR crop).

    ``diaphragm_index`` is the slice of the liver dome: the aorta above it belongs to the mediastinum, below it to
    the abdomen. The pleura is the one-voxel rim around the lungs (plus any pleural fluid), as a segmentation model
    trained on the pleura would give at this resolution.
    """
    lung = _any(labels, ("lung_right", "lung_left"))
    body = labels != LABEL["background"]
    aorta = labels == LABEL["aorta"]
    above = np.zeros_like(aorta)
    above[: max(0, diaphragm_index)] = True
    rim = ndimage.binary_dilation(lung, structure=ndimage.generate_binary_structure(3, 1)) & ~lung & body
    pleura = (rim & ~_any(labels, ("heart", "mediastinum", "aorta", "trachea", "bronchi", "esophagus"))) \
        | (labels == LABEL["pleural_fluid"])
    return {
        "abdomen": _any(labels, ("liver", "gallbladder", "stomach", "stomach_gas", "spleen", "kidney_right",
                                 "kidney_left", "pancreas", "bowel")) | (aorta & ~above),
        "bone": _any(labels, ("rib", "sternum", "spine", "pelvic_bone", "skull")),
        "breast": labels == LABEL["breast"],
        "esophagus": labels == LABEL["esophagus"],
        "heart": _any(labels, ("heart", "pericardial_fluid")),
        "lung": lung,
        "mediastinum": (labels == LABEL["mediastinum"]) | (aorta & above),
        "pleura": pleura,
        "thyroid": labels == LABEL["thyroid"],
        "trachea and bronchie": _any(labels, ("trachea", "bronchi")),
    }


def organ_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Abdominal/pelvic organs (AMOS-style names), the two lungs and the brain, as bool (D, H, W) masks."""
    out = {name: labels == LABEL[name] for name in
           ("liver", "spleen", "kidney_left", "kidney_right", "gallbladder", "pancreas", "aorta", "bladder",
            "lung_left", "lung_right", "brain")}
    out["stomach"] = _any(labels, ("stomach", "stomach_gas"))
    return out
