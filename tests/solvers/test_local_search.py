"""Batched 2-opt and Or-opt against plain per-instance reference loops; validity, monotonicity, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from geoattn.solvers import or_opt, two_opt


def _instances(
    batch: int, n: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, n, 2, generator=g, dtype=dtype)
    tours = torch.stack([torch.randperm(n, generator=g) for _ in range(batch)])
    return coords, tours


def _length(coords: torch.Tensor, tour: list[int]) -> float:
    """Independent closed-tour length of one instance, in Python floats."""
    pts = coords.tolist()
    return sum(math.dist(pts[a], pts[b]) for a, b in zip(tour, tour[1:] + tour[:1], strict=True))


def _distances(coords: torch.Tensor) -> list[list[float]]:
    return (coords[:, None, :] - coords[None, :, :]).norm(dim=-1).tolist()


def _tolerance(coords: torch.Tensor, tour: list[int]) -> float:
    """The default threshold of the torch implementation: n * eps * (input length)."""
    d = _distances(coords)
    n = len(tour)
    return n * torch.finfo(coords.dtype).eps * sum(d[tour[i]][tour[(i + 1) % n]] for i in range(n))


def two_opt_reference(coords: torch.Tensor, tour: list[int], first: bool) -> list[int]:
    """Sequential 2-opt on one instance: apply the best (or first) improving move until none is left."""
    d, n = _distances(coords), len(tour)
    tol = _tolerance(coords, tour)
    while True:
        best, best_delta = None, math.inf
        for i in range(n):
            for j in range(i + 2, n):
                if i == 0 and j == n - 1:
                    continue
                a, b, c, e = tour[i], tour[i + 1], tour[j], tour[(j + 1) % n]
                delta = ((d[a][c] + d[b][e]) - d[a][b]) - d[c][e]
                if delta < -tol and delta < best_delta:
                    best, best_delta = (i, j), delta
                    if first:
                        break
            if first and best is not None:
                break
        if best is None:
            return tour
        i, j = best
        tour = tour[: i + 1] + tour[i + 1 : j + 1][::-1] + tour[j + 1 :]


def or_opt_reference(coords: torch.Tensor, tour: list[int], first: bool, max_segment: int = 3) -> list[int]:
    """Sequential Or-opt on one instance, candidates in the order (s, forward/reversed, i, j)."""
    d, n = _distances(coords), len(tour)
    tol = _tolerance(coords, tour)
    while True:
        best, best_delta = None, math.inf
        for s in range(1, min(max_segment, n - 2) + 1):
            for rev in (False, True) if s > 1 else (False,):
                for i in range(n):
                    for j in range(n):
                        if not s <= (j - i) % n <= n - 2:
                            continue
                        p, a, b, q = tour[(i - 1) % n], tour[i], tour[(i + s - 1) % n], tour[(i + s) % n]
                        c, e = tour[j], tour[(j + 1) % n]
                        removal = (d[p][q] - d[p][a]) - d[b][q]
                        insertion = (d[c][b] + d[a][e]) if rev else (d[c][a] + d[b][e])
                        delta = removal + (insertion - d[c][e])
                        if delta < -tol and delta < best_delta and not (first and best is not None):
                            best, best_delta = (s, rev, i, j), delta
        if best is None:
            return tour
        s, rev, i, j = best
        rotated = tour[i:] + tour[:i]
        segment, rest = rotated[:s], rotated[s:]
        k = (j - i) % n - s + 1
        tour = rest[:k] + (segment[::-1] if rev else segment) + rest[k:]


SEARCHES = {"two_opt": (two_opt, two_opt_reference), "or_opt": (or_opt, or_opt_reference)}


@pytest.mark.parametrize("name", ["two_opt", "or_opt"])
@pytest.mark.parametrize("first", [False, True])
def test_matches_the_reference_loop(name: str, first: bool) -> None:
    search, reference = SEARCHES[name]
    for n, seed in ((5, 0), (9, 1), (12, 2)):
        coords, tours = _instances(4, n, seed)
        out = search(coords, tours, first_improvement=first)
        for b in range(4):
            expected = reference(coords[b], tours[b].tolist(), first)
            assert out.tours[b].tolist() == expected, (n, b)
            assert out.lengths[b].item() == pytest.approx(_length(coords[b], expected), rel=1e-12)


@pytest.mark.parametrize("name", ["two_opt", "or_opt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tours_stay_permutations_and_never_get_longer(name: str, dtype: torch.dtype) -> None:
    search, _ = SEARCHES[name]
    coords, tours = _instances(6, 20, seed=3, dtype=dtype)
    before = tours.clone()
    start = torch.tensor([_length(coords[b], tours[b].tolist()) for b in range(6)], dtype=torch.float64)
    for max_iterations in (0, 1, 5, None):
        out = search(coords, tours, max_iterations=max_iterations)
        assert out.tours.dtype == torch.long and out.lengths.dtype == dtype
        assert torch.equal(out.tours.sort(dim=1).values, torch.arange(20).expand(6, 20))
        recomputed = torch.tensor([_length(coords[b], out.tours[b].tolist()) for b in range(6)])
        torch.testing.assert_close(out.lengths.double(), recomputed.double(), rtol=1e-5, atol=0)
        assert (recomputed <= start + 1e-6).all()
        if max_iterations == 0:
            assert torch.equal(out.tours, tours)
        else:
            assert (recomputed < start).all()  # random tours always have an improving move
    assert torch.equal(tours, before)  # the input is not modified


def test_two_opt_uncrosses_a_tour() -> None:
    # A square visited along a diagonal crossing: 0 -> 2 -> 1 -> 3.
    square = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    out = two_opt(square, torch.tensor([[0, 2, 1, 3]]))
    assert out.lengths.item() == pytest.approx(4.0)
    # Points on a circle in a scrambled order: 2-opt finds the circle (the optimum, a convex polygon).
    n = 12
    angle = torch.arange(n) * 2 * math.pi / n
    circle = torch.stack([angle.cos(), angle.sin()], dim=-1)[None].double()
    out = two_opt(circle, torch.randperm(n, generator=torch.Generator().manual_seed(0))[None])
    assert out.lengths.item() == pytest.approx(n * 2 * math.sin(math.pi / n))
    steps = (out.tours[0].roll(-1) - out.tours[0]) % n
    assert (steps == 1).all() or (steps == n - 1).all()


def test_or_opt_moves_a_misplaced_city_back() -> None:
    # Points on a line visited 0 1 2 3 4 5 except that 4 is visited between 0 and 1.
    line = torch.tensor([[[float(i), 0.0] for i in range(6)]])
    out = or_opt(line, torch.tensor([[0, 4, 1, 2, 3, 5]]))
    assert out.lengths.item() == pytest.approx(10.0)


def test_explicit_distances() -> None:
    coords, tours = _instances(3, 10, seed=4)
    dist = (coords[:, :, None] - coords[:, None]).norm(dim=-1)
    for search in (two_opt, or_opt):
        a, b = search(coords, tours), search(None, tours, distances=dist)
        assert torch.equal(a.tours, b.tours)
        torch.testing.assert_close(a.lengths, b.lengths)
    # Rounded (TSPLIB EUC_2D-style) integer distances: lengths are sums of them.
    rounded = (dist * 100).round()
    out = two_opt(None, tours, distances=rounded)
    assert torch.equal(out.lengths, out.lengths.round())


def test_tiny_instances_are_returned_unchanged() -> None:
    for n in (1, 2, 3):
        coords, tours = _instances(2, n, seed=n)
        for search in (two_opt, or_opt):
            out = search(coords, tours)
            assert torch.equal(out.tours, tours)


def test_validation_messages() -> None:
    coords, tours = _instances(2, 5, seed=0)
    with pytest.raises(ValueError, match="every row of tours must be a permutation"):
        two_opt(coords, torch.tensor([[0, 1, 2, 3, 3], [0, 1, 2, 3, 4]]))
    with pytest.raises(ValueError, match="tours must be a long tensor"):
        two_opt(coords, tours.float())
    with pytest.raises(ValueError, match=r"coords must have shape \[2, 5, D\]"):
        or_opt(coords[:, :4], tours)
    asymmetric = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="distances must be symmetric"):
        two_opt(None, tours, distances=asymmetric)
    with pytest.raises(ValueError, match="pass coords or distances"):
        two_opt(None, tours)
    with pytest.raises(ValueError, match="max_segment must be >= 1"):
        or_opt(coords, tours, max_segment=0)
    with pytest.raises(ValueError, match="max_iterations must be None or >= 0"):
        two_opt(coords, tours, max_iterations=-1)
