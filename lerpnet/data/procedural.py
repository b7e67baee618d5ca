"""Procedural chairs: the embedded default dataset, so the main command needs no download.

Chairs are assembled from axis-aligned boxes on a 32^3 grid in the project's canonical pose, the
pose of the ModelNet chairs: z up (array axis 2), the back at high x, the front facing -x, the
width along y. Every chair draws its own parameters from `default_rng([seed, index])`, so a set is
reproducible and the first k chairs of `procedural_chairs(n, seed)` do not depend on n.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SIZE = 32
FLOOR = 1  # one empty layer under the chair, as the voxel sets have margins
BASES = ("legs", "pedestal", "sled")
BACKS = ("solid", "vertical_slats", "horizontal_rails", "frame")
ARMS = ("none", "open", "panel")


@dataclasses.dataclass(frozen=True)
class ChairParams:
    """Everything that makes one chair; all lengths in voxels."""

    base: str  # one of BASES
    seat_width: int  # along y
    seat_depth: int  # along x
    seat_height: int  # floor to seat top
    seat_thickness: int
    leg_thickness: int
    stretchers: bool  # bars between the legs (legs base) or a second cross bar (sled)
    back: str  # one of BACKS
    back_height: int  # above the seat
    back_thickness: int
    back_tilt: float  # voxels of backward lean per voxel of height
    slats: int  # slat or rail count for slatted backs
    arms: str  # one of ARMS
    arm_height: int  # above the seat


def sample_params(rng: np.random.Generator) -> ChairParams:
    """Draw chair parameters from ranges that keep every chair recognisable and inside the grid."""
    seat_height = int(rng.integers(9, 14))
    back_height = int(rng.integers(10, min(17, SIZE - 2 - FLOOR - seat_height) + 1))
    return ChairParams(
        base=str(rng.choice(BASES, p=[0.55, 0.25, 0.2])),
        seat_width=int(rng.integers(12, 21)),
        seat_depth=int(rng.integers(11, 19)),
        seat_height=seat_height,
        seat_thickness=int(rng.integers(1, 4)),
        leg_thickness=int(rng.integers(1, 4)),
        stretchers=bool(rng.random() < 0.4),
        back=str(rng.choice(BACKS)),
        back_height=back_height,
        back_thickness=int(rng.integers(1, 3)),
        back_tilt=float(rng.choice([0.0, 0.0, 0.15, 0.25])),
        slats=int(rng.integers(2, 6)),
        arms=str(rng.choice(ARMS, p=[0.5, 0.3, 0.2])),
        arm_height=int(rng.integers(4, 8)),
    )


def _box(grid: np.ndarray, x: tuple[int, int], y: tuple[int, int], z: tuple[int, int]) -> None:
    """Fill the half-open box [x0,x1) x [y0,y1) x [z0,z1), clipped to the grid."""
    lo = [max(0, a) for a in (x[0], y[0], z[0])]
    hi = [min(SIZE, b) for b in (x[1], y[1], z[1])]
    grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True


def build_chair(p: ChairParams) -> np.ndarray:
    """Rasterise one chair (bool 32^3, z-up, back at high x)."""
    grid = np.zeros((SIZE,) * 3, dtype=bool)
    # Seat, centred in y; in x shifted forward to leave room for a tilted back.
    lean = int(round(p.back_tilt * p.back_height))
    x0 = (SIZE - p.seat_depth - lean) // 2
    x1 = x0 + p.seat_depth
    y0 = (SIZE - p.seat_width) // 2
    y1 = y0 + p.seat_width
    top = FLOOR + p.seat_height
    under = top - p.seat_thickness
    _box(grid, (x0, x1), (y0, y1), (under, top))
    {"legs": _legs, "pedestal": _pedestal, "sled": _sled}[p.base](grid, p, x0, x1, y0, y1, under)
    _back(grid, p, x1, y0, y1, top)
    if p.arms != "none":
        _arms(grid, p, x0, x1, y0, y1, top)
    return grid


def _legs(grid, p: ChairParams, x0, x1, y0, y1, under) -> None:
    t = p.leg_thickness
    for lx in (x0, x1 - t):
        for ly in (y0, y1 - t):
            _box(grid, (lx, lx + t), (ly, ly + t), (FLOOR, under))
    if p.stretchers:
        z = FLOOR + max(2, (under - FLOOR) // 3)
        for ly in (y0, y1 - t):  # side bars front-to-back
            _box(grid, (x0, x1), (ly, ly + 1), (z, z + 1))
        mid = (x0 + x1) // 2  # H-shaped cross bar
        _box(grid, (mid, mid + 1), (y0, y1), (z, z + 1))


def _pedestal(grid, p: ChairParams, x0, x1, y0, y1, under) -> None:
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    r = max(2, p.leg_thickness + 1) // 2
    _box(grid, (cx - r, cx + r + 1), (cy - r, cy + r + 1), (FLOOR + 1, under))
    reach = min(p.seat_depth, p.seat_width) // 2 + 1
    if p.stretchers:  # round foot: a flat disc
        xs, ys = np.mgrid[:SIZE, :SIZE]
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= (reach - 1) ** 2
        grid[:, :, FLOOR][disc] = True
        return
    for angle in np.arange(5) * 2 * np.pi / 5 + np.pi / 10:  # five-star office-chair foot
        for s in np.linspace(0, reach, 4 * reach):  # 2x2 footprint keeps diagonal arms face-connected
            ax, ay = int(round(cx + s * np.cos(angle))), int(round(cy + s * np.sin(angle)))
            _box(grid, (ax, ax + 2), (ay, ay + 2), (FLOOR + 1, FLOOR + 2))
        _box(grid, (ax, ax + 2), (ay, ay + 2), (FLOOR, FLOOR + 1))  # caster


def _sled(grid, p: ChairParams, x0, x1, y0, y1, under) -> None:
    t = min(p.leg_thickness, 2)
    for ly in (y0, y1 - t):
        _box(grid, (x0 - 1, x1 + 1), (ly, ly + t), (FLOOR, FLOOR + 1))  # runner on the floor
        for lx in (x0 + 1, x1 - 1 - t):
            _box(grid, (lx, lx + t), (ly, ly + t), (FLOOR, under))  # uprights
    if p.stretchers:
        _box(grid, (x1 - 1 - t, x1 - 1), (y0, y1), (FLOOR, FLOOR + 1))


def _back(grid, p: ChairParams, x1, y0, y1, top) -> None:
    t = p.back_thickness
    post = max(1, min(2, p.leg_thickness))
    prev = x1 - t
    for dz in range(p.back_height):
        z = top + dz
        bx = x1 - t + int(round(p.back_tilt * dz))
        is_top_rail = dz >= p.back_height - 2
        xs = (prev, bx + t)  # reach back to the layer below so a leaning back stays in one piece
        prev = bx
        if p.back == "solid" or is_top_rail:
            _box(grid, xs, (y0, y1), (z, z + 1))
            continue
        _box(grid, xs, (y0, y0 + post), (z, z + 1))  # side posts carry every open style
        _box(grid, xs, (y1 - post, y1), (z, z + 1))
        if p.back == "vertical_slats":
            for sy in np.linspace(y0 + post, y1 - post, p.slats + 2)[1:-1]:
                _box(grid, xs, (int(sy), int(sy) + 1), (z, z + 1))
        elif p.back == "horizontal_rails" and dz % max(2, p.back_height // (p.slats + 1)) == 0:
            _box(grid, xs, (y0, y1), (z, z + 1))


def _arms(grid, p: ChairParams, x0, x1, y0, y1, top) -> None:
    z = top + p.arm_height
    for ay in (y0, y1 - 1):
        _box(grid, (x0 + 1, x1), (ay, ay + 1), (z - 1, z))  # armrest
        if p.arms == "panel":
            _box(grid, (x0 + 1, x1), (ay, ay + 1), (top, z))
        else:
            _box(grid, (x0 + 1, x0 + 2), (ay, ay + 1), (top, z))  # front post


def procedural_chairs(n: int, seed: int = 0) -> np.ndarray:
    """`n` varied chairs as bool (n, 32, 32, 32), z-up, deterministic for (seed, index)."""
    if n < 0:
        raise ValueError(f"procedural_chairs: n must be >= 0, got {n}")
    out = np.zeros((n,) + (SIZE,) * 3, dtype=bool)
    for i in range(n):
        out[i] = build_chair(sample_params(np.random.default_rng([seed, i])))
    return out
