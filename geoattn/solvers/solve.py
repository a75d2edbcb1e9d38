r"""The TSP solve pipeline behind ``geoattn solve-tsp``: normalise, decode with the policy, improve, report.

:func:`solve_tsp` takes a :class:`~geoattn.tasks.TsplibInstance` (from a ``.tsp``, ``.csv`` or ``.npy`` file,
or random points) and a trained :class:`~geoattn.nn.attention_model.TSPAttentionModel`:

1. **Normalise.** The policy was trained on points in the unit square, so the coordinates are shifted and
   scaled by one factor (the aspect ratio is kept): :math:`u_i = (x_i - \min_j x_j) / s` with
   :math:`s = \max(\text{width}, \text{height})` (:func:`normalise_coordinates`). ``GEO`` coordinates
   (``DDD.MM`` latitude, longitude) are first turned into decimal degrees and the longitude is scaled by the
   cosine of the mean latitude, a local planar picture of the sphere.
2. **Decode** with :func:`geoattn.solvers.neural.decode_tours` (greedy, multi-start or sampling, with or
   without the x8 symmetry augmentation). A rollout over ``n`` cities costs ``n`` steps over ``n`` cities,
   so unless ``num_starts`` is given, multi-start uses as many start cities (at most ``min(n, 100)``) as
   keep ``starts x images x n^2`` within :data:`DECODE_BUDGET` of the device (berlin52 gets every start
   city and all 8 images on a CPU, a280 3 start cities in each of the 8 images).
   Above :data:`COARSE_ABOVE` cities the policy decodes a tour of :data:`COARSE_CITIES` cities drawn at
   random (seeded) instead, the *coarse tour*; every city joins the cell of its nearest drawn city, cells
   are visited in the order of the coarse tour, and the cities of a cell in the order of their projection
   on the direction from the previous cell's city to the next one's. Local search does the rest.
3. **Improve** the decoded tour by local search in the instance's *exact* metric (TSPLIB's integer rules,
   or Euclidean floats for coordinate files), until no move improves or the time limit is reached:

   - up to :data:`DENSE_MAX_CITIES` cities, the batched torch 2-opt and Or-opt of
     :mod:`geoattn.solvers.local_search` on the full ``[n, n]`` distance matrix, alternated until neither
     improves (every move of the neighbourhood is considered);
   - above, :func:`neighbour_list_search`: 2-opt and Or-opt moves restricted to each city's
     :data:`NEIGHBOURS` nearest neighbours, evaluated vectorised and applied one by one (``O(n k)`` memory,
     no ``[n, n]`` matrix).
4. **Check and report**: the tour is checked to be a permutation, its length recomputed in the instance's
   metric, and the gap :math:`100\,(L - L^*) / L^*` given when the optimum :math:`L^*` is known.

Sizes: up to :data:`SOLVE_MAX_CITIES` cities; larger instances are refused with a ValueError (the file
readers accept up to :data:`geoattn.tasks.MAX_CITIES`, so such files are read, then refused here).

Duplicate coordinates need nothing special: duplicates sit at distance 0 (1 under ``GEO``), every city is
still visited once, and the result counts them in :attr:`SolveResult.duplicates`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch

from geoattn.tasks.coordinates import duplicate_groups
from geoattn.tasks.tour import check_tour
from geoattn.tasks.tsplib import TsplibInstance, read_optima_csv, read_tsp_instance, read_tsplib_tour
from geoattn.tasks.tsplib_distance import tsplib_distance

from .local_search import or_opt, two_opt

if TYPE_CHECKING:
    from geoattn.nn.attention_model import TSPAttentionModel

__all__ = [
    "COARSE_ABOVE",
    "COARSE_CITIES",
    "DECODE_BUDGET",
    "DECODINGS",
    "DENSE_MAX_CITIES",
    "NEIGHBOURS",
    "SOLVE_MAX_CITIES",
    "Decoding",
    "SolveResult",
    "default_starts",
    "load_instance",
    "load_policy",
    "neighbour_list_search",
    "normalise_coordinates",
    "solve_tsp",
]

Decoding = Literal["greedy", "multistart", "sampling"]
#: The decoding strategies of :func:`solve_tsp`, as the CLI accepts them.
DECODINGS: Final[tuple[str, ...]] = get_args(Decoding)
#: Most cities :func:`solve_tsp` accepts.
SOLVE_MAX_CITIES: Final = 10_000
#: Largest instance searched with the dense torch 2-opt / Or-opt; neighbour lists above.
DENSE_MAX_CITIES: Final = 200
#: Above this many cities the policy decodes a coarse tour of :data:`COARSE_CITIES` cities.
COARSE_ABOVE: Final = 2_000
#: Cities of the coarse tour of a large instance.
COARSE_CITIES: Final = 1_000
#: Default multi-start work per device type, in rollout steps x cities (``starts x images x n^2``).
DECODE_BUDGET: Final = {"cpu": 2.5e6, "cuda": 1e9}
#: Candidate neighbours per city of :func:`neighbour_list_search`.
NEIGHBOURS: Final = 10
# Moves per call of the dense search between two looks at the clock.
_DENSE_CHUNK: Final = 32

# d(u, v) for index arrays u, v of equal shape, in the instance's metric (float64).
_PairDistance = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class SolveResult:
    """A solved instance.

    Attributes:
        name: the instance's name.
        n: number of cities.
        tour: ``[n]`` int64 permutation, the order of visits (0-based; TSPLIB node ``i + 1``).
        length: the tour's length in the instance's metric (an integer value for TSPLIB types).
        decoded_length: the length of the policy's tour before local search, same metric.
        optimum: the known optimal length, or ``None``.
        edge_weight_type: the TSPLIB ``EDGE_WEIGHT_TYPE``, or ``None`` for Euclidean float distances.
        decoding: the decoding strategy.
        starts: start cities of multi-start decoding (``None`` for the other strategies).
        augment: whether the x8 augmentation was used.
        coarse_cities: cities of the coarse tour above :data:`COARSE_ABOVE` cities, else ``None``.
        local_search: ``"dense"``, ``"neighbour-lists"`` or ``"off"``.
        timed_out: whether the local search stopped at the time limit.
        duplicates: cities at the same place as an earlier city.
        times: seconds spent per stage: ``decode``, ``local_search`` and ``total``.
    """

    name: str
    n: int
    tour: npt.NDArray[np.int64]
    length: float
    decoded_length: float
    optimum: float | None
    edge_weight_type: str | None
    decoding: str
    starts: int | None
    augment: bool
    coarse_cities: int | None
    local_search: str
    timed_out: bool
    duplicates: int
    times: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        r"""The gap to the optimum in percent, :math:`100\,(L - L^*) / L^*`, or ``None`` when unknown."""
        if self.optimum is None or self.optimum <= 0:
            return None
        return 100.0 * (self.length - self.optimum) / self.optimum

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable fields (the tour as 1-based TSPLIB node numbers)."""
        return {
            "name": self.name,
            "n": self.n,
            "edge_weight_type": self.edge_weight_type or "EUCLIDEAN",
            "length": self.length,
            "decoded_length": self.decoded_length,
            "optimum": self.optimum,
            "gap_percent": self.gap,
            "decoding": self.decoding,
            "starts": self.starts,
            "augment": self.augment,
            "coarse_cities": self.coarse_cities,
            "local_search": self.local_search,
            "timed_out": self.timed_out,
            "duplicates": self.duplicates,
            "times_s": dict(self.times),
            "tour": (self.tour + 1).tolist(),
        }


def normalise_coordinates(
    coords: npt.ArrayLike, edge_weight_type: str | None = None
) -> npt.NDArray[np.float64]:
    """``[n, 2]`` coordinates mapped into the unit square with their aspect ratio kept (module docstring).

    The longer side of the bounding box becomes ``[0, 1]``; all points at one place map to the origin.
    ``GEO`` coordinates are projected first (decimal degrees, longitude scaled by the cosine of the mean
    latitude, returned as ``(x, y) = (longitude, latitude)``).
    """
    c = np.asarray(coords, dtype=np.float64)
    if edge_weight_type == "GEO":
        degrees = np.trunc(c)
        decimal = degrees + (c - degrees) * (100.0 / 60.0)  # DDD.MM -> decimal degrees
        lat, lon = decimal[:, 0], decimal[:, 1]
        c = np.stack([lon * math.cos(math.radians(float(lat.mean()))), lat], axis=1)
    low = c.min(axis=0)
    extent = float((c.max(axis=0) - low).max())
    return (c - low) / (extent if extent > 0 else 1.0)


def _pair_distance(instance: TsplibInstance) -> _PairDistance:
    """The instance's metric on index arrays (exact TSPLIB integers as float64, or Euclidean floats)."""
    coords, kind = instance.coords, instance.edge_weight_type
    if kind is None:
        return lambda u, v: np.hypot(*(coords[u] - coords[v]).T)
    return lambda u, v: tsplib_distance(coords[u], coords[v], kind).astype(np.float64)


def load_instance(path: str | os.PathLike[str], *, optimal: float | None = None) -> TsplibInstance:
    """Read a ``.tsp`` / ``.csv`` / ``.npy`` file with its optimum when one is known.

    The optimum is ``optimal`` if given; else the ``optimal_length`` of the instance's name (or the file's
    stem) in an ``optimal.csv`` next to the file; else the length of ``<stem>.opt.tour`` next to the file in
    the instance's metric; else ``None``.

    Raises:
        FileNotFoundError, ValueError: as :func:`~geoattn.tasks.read_tsp_instance` and the companion readers.
    """
    p = Path(path)
    instance = read_tsp_instance(p)
    optimum = optimal
    table = p.parent / "optimal.csv"
    if optimum is None and table.is_file():
        optima = read_optima_csv(table)
        optimum = optima.get(instance.name, optima.get(p.stem))
    tour_file = p.parent / f"{p.stem}.opt.tour"
    if optimum is None and tour_file.is_file():
        optimum = instance.tour_length(read_tsplib_tour(tour_file, instance.n))
    return TsplibInstance(
        name=instance.name,
        coords=instance.coords,
        edge_weight_type=instance.edge_weight_type,
        optimum=optimum,
        comment=instance.comment,
        path=instance.path,
    )


def default_starts(n: int, *, augment: bool, device: str | torch.device = "cpu") -> int:
    """Start cities of multi-start decoding when none are given: ``min(n, 100)`` within the work budget.

    The most ``P <= min(n, 100)`` with ``P x images x n^2 <=`` :data:`DECODE_BUDGET` of the device type
    (``images`` = 8 with augmentation, else 1), and at least 1.
    """
    from .neural import DEFAULT_MAX_STARTS

    budget = DECODE_BUDGET.get(torch.device(device).type, DECODE_BUDGET["cpu"])
    images = 8 if augment else 1
    return max(1, min(n, DEFAULT_MAX_STARTS, int(budget // (images * n * n))))


def load_policy(
    path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu"
) -> TSPAttentionModel:
    """The policy to solve with: the shipped default, or exported weights at ``path``.

    ``path`` is a weights folder written by ``python -m geoattn.solvers.pretrained export`` (its
    ``manifest.json`` and ``<name>.safetensors``; the manifest's default model is loaded), that folder's
    ``manifest.json``, or one ``<name>.safetensors`` in it (that model). Loading goes through
    :func:`~geoattn.solvers.pretrained.load_pretrained`: sha256-checked, safe for untrusted files.

    Raises:
        FileNotFoundError: no shipped weights (``path=None``), or nothing at ``path``.
        ValueError: ``path`` is none of the accepted forms, or names a model the manifest lacks.
        PretrainedWeightsError: corrupt, tampered or mismatched weights.
    """
    from .pretrained import MANIFEST_NAME, load_pretrained

    if path is None:
        return load_pretrained(device=device)
    p = Path(path)
    if p.is_dir():
        return load_pretrained(device=device, weights_dir=p)
    if not p.is_file():
        raise FileNotFoundError(f"policy weights not found: {p}")
    if p.name == MANIFEST_NAME:
        return load_pretrained(device=device, weights_dir=p.parent)
    if p.suffix == ".safetensors":
        return load_pretrained(p.stem, device=device, weights_dir=p.parent)
    raise ValueError(
        f"{p}: expected a weights folder (manifest.json and <name>.safetensors, written by "
        "`python -m geoattn.solvers.pretrained export`), its manifest.json, or a .safetensors file in it"
    )


def _decode(
    model: TSPAttentionModel,
    unit: npt.NDArray[np.float64],
    *,
    decoding: Decoding,
    augment: bool,
    num_starts: int | None,
    num_samples: int,
    generator: torch.Generator,
) -> npt.NDArray[np.int64]:
    """The policy's tour of the ``[n, 2]`` unit-square points (``num_starts`` resolved by the caller)."""
    from .neural import decode_tours

    parameter = next(model.parameters())
    coords = torch.as_tensor(unit, dtype=parameter.dtype, device=parameter.device)[None]
    result = decode_tours(
        model,
        coords,
        strategy=decoding,
        num_starts=num_starts,
        num_samples=num_samples,
        augment=augment,
        generator=generator,
    )
    return check_tour(result.tours[0].cpu(), unit.shape[0], name="decoded tour")


def _expand_coarse(
    unit: npt.NDArray[np.float64], drawn: npt.NDArray[np.int64], coarse: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """A tour of all cities from the coarse tour ``coarse`` over the cities ``drawn`` (module docstring)."""
    from scipy.spatial import cKDTree

    m = drawn.shape[0]
    centres = drawn[coarse]  # drawn cities in the order of the coarse tour
    _, cell = cKDTree(unit[centres]).query(unit)  # [n] rank of each city's cell along the coarse tour
    cell = np.asarray(cell, dtype=np.int64)
    direction = unit[centres[(cell + 1) % m]] - unit[centres[(cell - 1) % m]]
    along = ((unit - unit[centres[cell]]) * direction).sum(axis=1)
    return np.lexsort((along, cell)).astype(np.int64)


def _dense_search(
    instance: TsplibInstance, tour: npt.NDArray[np.int64], deadline: float, device: torch.device
) -> tuple[npt.NDArray[np.int64], bool]:
    """2-opt and Or-opt on the full distance matrix, alternated until neither improves; (tour, timed out)."""
    distances = torch.as_tensor(instance.distance_matrix(), dtype=torch.float64, device=device)[None]
    tours = torch.as_tensor(tour, device=device)[None]
    length = math.inf
    searches = itertools.cycle((two_opt, or_opt))
    idle = 0  # searches in a row that found nothing
    while idle < 2:
        search, found = next(searches), False
        while True:  # this search until it stalls, looking at the clock every _DENSE_CHUNK moves
            if time.perf_counter() >= deadline:
                return tours[0].cpu().numpy(), True
            result = search(None, tours, distances=distances, max_iterations=_DENSE_CHUNK)
            if not float(result.lengths[0]) < length:
                break
            tours, length, found = result.tours, float(result.lengths[0]), True
        idle = 0 if found else idle + 1
    return tours[0].cpu().numpy(), False


def solve_tsp(
    instance: TsplibInstance,
    model: TSPAttentionModel,
    *,
    decoding: Decoding = "multistart",
    augment: bool = True,
    local_search: bool = True,
    time_limit: float | None = None,
    num_starts: int | None = None,
    num_samples: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    optimum: float | None = None,
) -> SolveResult:
    """Solve one instance: normalise, decode with ``model``, improve by local search (module docstring).

    Args:
        instance: the instance (its ``optimum`` is used unless ``optimum`` is given).
        model: the policy; moved to ``device`` for the call and left in eval mode.
        decoding: ``"greedy"``, ``"multistart"`` (every start city, POMO style) or ``"sampling"``.
            (default: ``"multistart"``)
        augment: decode all 8 symmetries of the unit square and keep the best. (default: ``True``)
        local_search: improve the decoded tour by 2-opt / Or-opt in the instance's metric. (default: ``True``)
        time_limit: seconds for the whole solve; decoding runs to completion, the local search stops at the
            limit and keeps its best tour (``None``: no limit). (default: ``None``)
        num_starts: start cities of multi-start decoding (``None``: :func:`default_starts`). (default: ``None``)
        num_samples: tours sampled per instance (and symmetry) with ``"sampling"``. (default: ``16``)
        seed: seed of the sampling generator and of the coarse tour's cities. (default: ``0``)
        device: where the policy and the dense local search run. (default: ``"cpu"``)
        optimum: the known optimal length, overriding ``instance.optimum``. (default: ``None``)

    Returns:
        A :class:`SolveResult`.

    Raises:
        ValueError: more than :data:`SOLVE_MAX_CITIES` cities, an unknown ``decoding``, a non-positive
            ``time_limit``, ``num_starts`` or ``num_samples``.
    """
    start = time.perf_counter()
    n = instance.n
    if n > SOLVE_MAX_CITIES:
        raise ValueError(
            f"{instance.name}: {n} cities is more than the {SOLVE_MAX_CITIES} that solve-tsp accepts "
            "(the largest size its decoding and local search are tested and timed at)"
        )
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {list(DECODINGS)}, got {decoding!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit}")
    if num_starts is not None and num_starts < 1:
        raise ValueError(f"num_starts must be a positive integer or None, got {num_starts}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples}")
    dev = torch.device(device)
    model = model.to(dev).eval()
    unit = normalise_coordinates(instance.coords, instance.edge_weight_type)
    drawn = None
    if n > COARSE_ABOVE:
        rng = np.random.default_rng(seed)
        drawn = np.sort(rng.choice(n, COARSE_CITIES, replace=False))
    m = n if drawn is None else COARSE_CITIES
    if num_starts is not None and num_starts > m:
        raise ValueError(f"num_starts must be at most the {m} cities decoded, got {num_starts}")
    starts = None
    if decoding == "multistart":
        starts = default_starts(m, augment=augment, device=dev) if num_starts is None else num_starts
    decode = functools.partial(
        _decode,
        model,
        decoding=decoding,
        augment=augment,
        num_starts=starts,
        num_samples=num_samples,
        generator=torch.Generator(device=dev).manual_seed(seed),
    )
    with torch.no_grad():
        tour = decode(unit) if drawn is None else _expand_coarse(unit, drawn, decode(unit[drawn]))
    decoded = time.perf_counter()
    decoded_length = instance.tour_length(tour)
    deadline = math.inf if time_limit is None else start + time_limit
    method, timed_out = "off", False
    if local_search and n > 3:
        if n <= DENSE_MAX_CITIES:
            method = "dense"
            tour, timed_out = _dense_search(instance, tour, deadline, dev)
        else:
            method = "neighbour-lists"
            tour, timed_out = neighbour_list_search(instance, tour, deadline=deadline)
    searched = time.perf_counter()
    length = instance.tour_length(tour)  # checks the permutation
    return SolveResult(
        name=instance.name,
        n=n,
        tour=tour,
        length=length,
        decoded_length=decoded_length,
        optimum=instance.optimum if optimum is None else optimum,
        edge_weight_type=instance.edge_weight_type,
        decoding=decoding,
        starts=starts,
        augment=augment,
        coarse_cities=None if drawn is None else COARSE_CITIES,
        local_search=method,
        timed_out=timed_out,
        duplicates=sum(len(g) - 1 for g in duplicate_groups(instance.coords)),
        times={
            "decode": decoded - start,
            "local_search": searched - decoded,
            "total": time.perf_counter() - start,
        },
    )


# ----------------------------------------------------------------------------------------------------------
# Local search on neighbour lists (large instances).


class _Tour:
    """An array tour with positions: ``order[pos[c]] == c``; moves keep both in step."""

    def __init__(self, order: npt.NDArray[np.int64]) -> None:
        self.order = order.copy()
        self.n = int(order.shape[0])
        self.pos = np.empty_like(self.order)
        self.pos[self.order] = np.arange(self.n)

    def succ(self, c: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self.order[(self.pos[c] + 1) % self.n]

    def pred(self, c: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self.order[(self.pos[c] - 1) % self.n]

    def reverse(self, i: int, j: int) -> None:
        """Reverse the cyclic stretch of positions ``i .. j`` (or, equivalently, its complement if shorter)."""
        n = self.n
        length = (j - i) % n + 1
        if 2 * length > n:  # the complement j+1 .. i-1 gives the same cycle, mirrored
            i, j, length = (j + 1) % n, (i - 1) % n, n - length
        idx = (i + np.arange(length)) % n
        cities = self.order[idx[::-1]]
        self.order[idx] = cities
        self.pos[cities] = idx

    def relocate(self, block: npt.NDArray[np.int64], after: int) -> None:
        """Move ``block`` (cities contiguous in the tour, in the order to insert) right after city ``after``."""
        n, size = self.n, block.shape[0]
        first, last = int(self.pos[block[0]]), int(self.pos[block[-1]])
        start = first if (last - first) % n == size - 1 else last  # the block's first position in the tour
        rest = self.order[(start + size + np.arange(n - size)) % n]
        k = int(np.flatnonzero(rest == after)[0]) + 1
        self.order = np.concatenate([rest[:k], block, rest[k:]])
        self.pos[self.order] = np.arange(n)


def _nearest_neighbours(points: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """``[n, k]`` indices of each point's ``k`` nearest other points (planar picture, for candidates only)."""
    from scipy.spatial import cKDTree

    k = min(k, points.shape[0] - 1)
    _, idx = cKDTree(points).query(points, k=k + 1)
    idx = np.asarray(idx, dtype=np.int64)
    # Drop each point itself (usually column 0; with duplicates it may sit elsewhere).
    own = idx == np.arange(points.shape[0])[:, None]
    own[~own.any(axis=1), -1] = True
    return idx[~own].reshape(points.shape[0], k)


def neighbour_list_search(
    instance: TsplibInstance,
    tour: npt.ArrayLike,
    *,
    neighbours: int = NEIGHBOURS,
    deadline: float = math.inf,
) -> tuple[npt.NDArray[np.int64], bool]:
    r"""2-opt and Or-opt restricted to nearest-neighbour candidates, in the instance's exact metric.

    Each round evaluates, vectorised over every *active* city :math:`a` and each of its ``neighbours``
    nearest cities :math:`c` (nearest in the normalised plane; the deltas use the exact metric ``d``):

    - 2-opt: remove :math:`(a, a^+), (c, c^+)`, add :math:`(a, c), (a^+, c^+)`:
      :math:`\Delta = d(a, c) + d(a^+, c^+) - d(a, a^+) - d(c, c^+)`; the same with predecessors;
    - Or-opt: move the segment of 1 to 3 cities that starts or ends at :math:`a` next to :math:`c`, in the
      orientation that makes :math:`(a, c)` an edge.

    Improving moves are then applied in order of :math:`\Delta`, each re-checked against the tour as it
    is by then (a move whose edges are gone, or that no longer improves, is skipped). Cities at the ends
    of changed edges become active for the next round (don't-look bits); when the active cities have no
    improving move, one round over all cities confirms it, and the search ends when that round finds none
    too, or at ``deadline`` (a ``time.perf_counter()`` value). Memory is :math:`O(n k)`; a
    2-opt move costs :math:`O(n)` at most (the shorter side is reversed).

    Args:
        instance: the instance (its metric and coordinates).
        tour: ``[n]`` permutation to improve.
        neighbours: candidates per city. (default: :data:`NEIGHBOURS`)
        deadline: stop when ``time.perf_counter()`` passes it. (default: no limit)

    Returns:
        ``(tour, timed_out)``: the improved ``[n]`` int64 tour (never longer) and whether the deadline
        stopped the search.
    """
    n = instance.n
    t = _Tour(check_tour(tour, n, name="tour"))
    if n < 5:
        return t.order, False
    dist = _pair_distance(instance)
    near = _nearest_neighbours(normalise_coordinates(instance.coords, instance.edge_weight_type), neighbours)
    scale = float(dist(t.order, np.roll(t.order, -1)).sum())
    # Integer metrics: improve by at least 1; floats: by more than rounding (as the torch search does).
    tol = n * float(np.finfo(np.float64).eps) * scale if instance.edge_weight_type is None else 0.5
    active = np.ones(n, dtype=bool)
    while True:
        if time.perf_counter() >= deadline:
            return t.order, True
        moves = _candidate_moves(t, dist, near, np.flatnonzero(active), tol)
        if not moves:
            if active.all():
                return t.order, False
            active[:] = True  # confirm the local optimum with every city before stopping
            continue
        active[:] = False
        for move in moves:
            if time.perf_counter() >= deadline:
                return t.order, True
            touched = _apply(t, dist, move, tol)
            if touched is not None:
                active[touched] = True


# A candidate: (delta, kind, cities). kind 0: 2-opt with cities (x, x_next, y, y_next), x_next following x
# and y_next following y; kind 1: Or-opt with (s0, s_last, x, y): the segment's ends and the edge (x, y) to
# put it in, s0 next to x.
_Move = tuple[float, int, tuple[int, ...]]


def _candidate_moves(
    t: _Tour,
    dist: _PairDistance,
    near: npt.NDArray[np.int64],
    cities: npt.NDArray[np.int64],
    tol: float,
) -> list[_Move]:
    """Improving 2-opt and Or-opt moves around ``cities``, best first (see :func:`neighbour_list_search`)."""
    k = near.shape[1]
    a = np.repeat(cities, k)
    c = near[cities].reshape(-1)
    found: list[tuple[npt.NDArray[np.float64], int, list[npt.NDArray[np.int64]]]] = []
    # 2-opt, successor and predecessor variants; written as (x, x+, y, y+) with x+ following x.
    for x, y in ((a, c), (t.pred(a), t.pred(c))):
        xn, yn = t.succ(x), t.succ(y)
        delta = dist(x, y) + dist(xn, yn) - dist(x, xn) - dist(y, yn)
        ok = (x != y) & (xn != y) & (yn != x) & (delta < -tol)
        found.append((delta[ok], 0, [x[ok], xn[ok], y[ok], yn[ok]]))
    # Or-opt: the segment of length s starts at a (forward, s0 = a) or ends at a; a is joined to c, placed
    # between c and its successor or predecessor.
    n = t.n
    for s in range(1, 4):
        if n < s + 4:
            break
        for forward in (True, False):
            shift = s - 1 if forward else -(s - 1)
            other = t.order[(t.pos[a] + shift) % n]  # the segment's far end
            step = 1 if forward else -1
            p = t.order[(t.pos[a] - step) % n]  # before a, outside the segment
            q = t.order[(t.pos[other] + step) % n]  # after the far end
            removal = dist(p, q) - dist(p, a) - dist(other, q)
            offset = (t.pos[c] - t.pos[a]) * step % n  # c's place along the segment's direction
            outside = offset >= s
            for y in (t.succ(c), t.pred(c)):
                y_offset = (t.pos[y] - t.pos[a]) * step % n
                delta = removal + dist(c, a) + dist(other, y) - dist(c, y)
                ok = outside & (y_offset >= s) & (delta < -tol)
                found.append((delta[ok], 1, [a[ok], other[ok], c[ok], y[ok]]))
    if not found:
        return []
    deltas = np.concatenate([f[0] for f in found])
    order = np.argsort(deltas, kind="stable")
    moves: list[_Move] = []
    for delta_, kind, cols in found:
        rows = np.stack(cols, axis=1).tolist()
        moves += [(float(d), kind, tuple(r)) for d, r in zip(delta_.tolist(), rows, strict=True)]
    return [moves[i] for i in order.tolist()]


def _apply(t: _Tour, dist: _PairDistance, move: _Move, tol: float) -> list[int] | None:
    """Apply ``move`` if it is still valid and improving on the current tour; the touched cities, or None."""
    _, kind, cities = move
    n, order, pos = t.n, t.order, t.pos
    if kind == 0:
        x, xn, y, yn = cities
        if order[(pos[x] + 1) % n] == xn and order[(pos[y] + 1) % n] == yn:
            t.reverse(int(pos[x]) + 1, int(pos[y]))
        elif order[(pos[xn] + 1) % n] == x and order[(pos[yn] + 1) % n] == y:
            t.reverse(int(pos[xn]) + 1, int(pos[yn]))  # both edges run the other way now: same exchange
        else:
            return None  # an edge is gone, or the exchange would split the tour in two
        # Same four cities and edges, so the same (improving) delta as when the move was found.
        return [x, xn, y, yn]
    s0, last, x, y = cities
    length = int(pos[last] - pos[s0]) % n + 1
    step = 1
    if length > 3:
        length, step = int(pos[s0] - pos[last]) % n + 1, -1
    if length > 3 or int(pos[x] - pos[y]) % n not in (1, n - 1):
        return None
    block = order[(pos[s0] + step * np.arange(length)) % n]  # s0 .. last
    if x in block or y in block:
        return None
    p, q = int(order[(pos[s0] - step) % n]), int(order[(pos[last] + step) % n])
    d = dist(np.array([p, p, last, x, last, x]), np.array([q, s0, q, s0, y, y]))
    if not (d[0] - d[1] - d[2]) + (d[3] + d[4] - d[5]) < -tol:
        return None
    # Put the block between x and y, s0 next to x.
    if order[(pos[x] + 1) % n] == y:
        t.relocate(block, x)
    else:
        t.relocate(block[::-1], y)
    return [p, q, s0, last, x, y]
