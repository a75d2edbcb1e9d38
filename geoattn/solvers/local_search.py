r"""Batched local search for the symmetric TSP in torch: 2-opt and Or-opt, vectorised over instances and moves.

Each iteration evaluates every move of every instance at once from the distance matrix permuted into tour
order, :math:`P_{b,ij} = D_{b,\,t_i t_j}`, applies one improving move per instance, and drops the instances
that have none; the search stops when no instance improves (or after ``max_iterations``).

Memory: the distance matrix ``[B, n, n]`` plus about four ``[B', n, n]`` temporaries per iteration for the
``B'`` instances still improving — for ``B = 512, n = 200`` in float32 about 80 MiB each, so 2-opt suits
``n`` up to a few hundred. Time per iteration is :math:`O(B' n^2)`; the number of iterations grows with
``n`` (roughly linearly from a random tour), so tours from a decent constructor converge much faster.

Backends: :func:`two_opt` takes ``backend="auto" | "torch" | "triton"`` (as in :mod:`geoattn.kernels`);
with ``"triton"`` its best-improvement search on float32/float64 distances runs the persistent Triton kernel
of :mod:`geoattn.kernels.two_opt` (one program per instance, the whole search in one launch, memory: the
distance matrix only), giving bitwise the same tours; ``"auto"`` picks it for CUDA tensors (10-50x the
batched torch search on an H200: ``benchmarks/RESULTS.md``). ``first_improvement=True`` runs in torch on every
backend; :func:`or_opt` takes the same keyword but has no kernel yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ..kernels import Backend, resolve_backend
from ..kernels.two_opt import TRITON_IMPLEMENTED, two_opt_search
from ..kernels.two_opt.reference import next_edges, reverse_segments, tour_ordered, two_opt_deltas
from ._tour import check_instances, distance_matrix, tour_length_from_distances

__all__ = ["LocalSearchResult", "or_opt", "two_opt"]

# A move generator: (P [A, n, n], tours [A, n], tol [A], first_improvement) -> (improved [A], tours [A, n]).
_Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor]]
# A whole search: (distances [B, n, n], tours [B, n], tol [B], max_iterations) -> new tours [B, n].
_Run = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int | None], torch.Tensor]


class LocalSearchResult(NamedTuple):
    """Improved tours and their lengths.

    Attributes:
        tours: ``[B, n]`` permutations, never longer than the input tours.
        lengths: ``[B]`` closed-tour lengths under the distances searched with.
    """

    tours: torch.Tensor
    lengths: torch.Tensor


def _pick(
    delta: torch.Tensor, tol: torch.Tensor, first: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``delta`` ``[A, K]`` (``inf`` = invalid): (improved, flat index, delta) of the chosen move."""
    if first:
        hit = delta < -tol[:, None]
        index = hit.to(torch.uint8).argmax(dim=1)  # the first improving move
        return hit.any(dim=1), index, delta.gather(1, index[:, None])[:, 0]
    best, index = delta.min(dim=1)  # the first of the best moves
    return best < -tol, index, best


def _two_opt_step(
    p: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, first: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    n = tours.shape[1]
    improved, index, _ = _pick(two_opt_deltas(p).flatten(1), tol, first)
    return improved, reverse_segments(tours, index // n, index % n, improved)


def _two_opt_kernel(
    distances: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, max_iterations: int | None
) -> torch.Tensor:
    """The whole best-improvement search in the Triton kernel of :mod:`geoattn.kernels.two_opt`."""
    return two_opt_search(distances, tours, tol, max_iterations=max_iterations, backend="triton")


def _or_opt_delta(p: torch.Tensor, e: torch.Tensor, s: int, reverse: bool) -> torch.Tensor:
    """``delta[b, i, j]``: move t_i .. t_{i+s-1} between t_j and t_{j+1} (reversed or not), ``inf`` if invalid."""
    n = p.shape[1]
    pos = torch.arange(n, device=p.device)
    prev, end, after, nxt = (pos - 1) % n, (pos + s - 1) % n, (pos + s) % n, (pos + 1) % n
    # Removing the segment: edges (t_{i-1}, t_i), (t_{i+s-1}, t_{i+s}) become (t_{i-1}, t_{i+s}).
    removal = (p[:, prev, after] - e[:, prev]) - e[:, end]  # [A, n] over i
    if reverse:  # t_j, t_{i+s-1} .. t_i, t_{j+1}
        insertion = p.transpose(1, 2)[:, end, :] + p[:, :, nxt]
    else:  # t_j, t_i .. t_{i+s-1}, t_{j+1}
        insertion = p.transpose(1, 2) + p[:, end[:, None], nxt[None, :]]
    delta = removal[:, :, None] + (insertion - e[:, None, :])
    offset = (pos[None, :] - pos[:, None]) % n  # (j - i) mod n
    return delta.masked_fill(~((offset >= s) & (offset <= n - 2)), torch.inf)


def _or_opt_step(
    p: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, first: bool, max_segment: int
) -> tuple[torch.Tensor, torch.Tensor]:
    rows, n = tours.shape
    e = next_edges(p)
    found = torch.zeros(rows, dtype=torch.bool, device=p.device)
    best = torch.full((rows,), torch.inf, dtype=p.dtype, device=p.device)
    index = torch.zeros(rows, dtype=torch.long, device=p.device)
    size = torch.ones(rows, dtype=torch.long, device=p.device)
    flip = torch.zeros(rows, dtype=torch.bool, device=p.device)
    # Candidates in the order (s, forward before reversed, i, j); ties keep the earliest.
    for s in range(1, min(max_segment, n - 2) + 1):
        for reverse in (False, True) if s > 1 else (False,):
            improved, k, value = _pick(_or_opt_delta(p, e, s, reverse).flatten(1), tol, first)
            take = improved & ~found if first else improved & (value < best)
            best = torch.where(take, value, best)
            index = torch.where(take, k, index)
            size = torch.where(take, s, size)
            flip = torch.where(take, reverse, flip)
            found = found | take
    pos = torch.arange(n, device=p.device)
    i, j = (index // n)[:, None], (index % n)[:, None]
    s_, jp = size[:, None], (j - i) % n
    # Rotate so the segment starts at 0 (r_q = t_{i+q}); the new tour is r_s .. r_jp, segment, r_{jp+1} ..
    k = pos - (jp - s_ + 1)
    src = torch.where(
        pos <= jp - s_, pos + s_, torch.where(k < s_, torch.where(flip[:, None], s_ - 1 - k, k), pos)
    )
    src = torch.where(found[:, None], (src + i) % n, pos)
    return found, tours.gather(1, src)


def _batched(step: _Step, first: bool) -> _Run:
    """The search that applies ``step`` to every instance still improving, iteration after iteration."""

    def run(
        distances: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, max_iterations: int | None
    ) -> torch.Tensor:
        current = tours.clone()
        active = torch.ones(tours.shape[0], dtype=torch.bool, device=tours.device)
        iteration = 0
        while max_iterations is None or iteration < max_iterations:
            rows = active.nonzero()[:, 0]
            if rows.numel() == 0:
                break
            sub = current[rows]
            improved, sub = step(tour_ordered(distances[rows], sub), sub, tol[rows], first)
            current[rows] = sub
            active[rows] = improved
            iteration += 1
        return current

    return run


def _search(
    owner: str,
    coords: torch.Tensor | None,
    tours: torch.Tensor,
    distances: torch.Tensor | None,
    max_iterations: int | None,
    tolerance: float | None,
    run: _Run,
) -> LocalSearchResult:
    """Checks, distances and thresholds, the search ``run``, lengths and the never-longer safety net."""
    if coords is None and distances is None:
        raise ValueError(f"{owner}: pass coords or distances")
    check_instances(owner, coords, tours, distances)
    if max_iterations is not None and max_iterations < 0:
        raise ValueError(f"{owner}: max_iterations must be None or >= 0, got {max_iterations}")
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"{owner}: tolerance must be None or >= 0, got {tolerance}")
    with torch.no_grad():
        if distances is None:
            assert coords is not None
            distances = distance_matrix(coords)
        elif not torch.equal(distances, distances.transpose(1, 2)):
            raise ValueError(f"{owner}: distances must be symmetric (D[b, i, j] == D[b, j, i])")
        distances = distances.detach()
        n = tours.shape[1]
        start = tour_length_from_distances(distances, tours)
        rel = n * torch.finfo(distances.dtype).eps if tolerance is None else tolerance
        current = run(distances, tours, rel * start, max_iterations)
        lengths = tour_length_from_distances(distances, current)
        # A safety net against rounding: the tolerance makes it unreachable in practice.
        worse = lengths > start
        return LocalSearchResult(
            torch.where(worse[:, None], tours, current), torch.where(worse, start, lengths)
        )


def two_opt(
    coords: torch.Tensor | None,
    tours: torch.Tensor,
    *,
    max_iterations: int | None = None,
    first_improvement: bool = False,
    distances: torch.Tensor | None = None,
    tolerance: float | None = None,
    backend: Backend = "auto",
) -> LocalSearchResult:
    r"""2-opt local search on a batch of closed tours: reverse segments while that shortens the tour.

    Move :math:`(i, j)`, :math:`0 \le i < j - 1`, reverses :math:`t_{i+1} \dots t_j`, replacing edges
    :math:`(t_i, t_{i+1}), (t_j, t_{j+1})` by :math:`(t_i, t_j), (t_{i+1}, t_{j+1})` (indices mod
    :math:`n`; the pair :math:`(0, n-1)`, whose edges touch, is excluded):

    .. math::
        \Delta_{ij} = D_{t_i t_j} + D_{t_{i+1} t_{j+1}} - D_{t_i t_{i+1}} - D_{t_j t_{j+1}}.

    Every iteration computes the ``[B, n, n]`` matrix :math:`\Delta` of every instance still improving
    and applies, per instance, the best-improving move (the smallest :math:`\Delta`, first in row-major
    order on ties), or with ``first_improvement=True`` the first improving move in row-major
    :math:`(i, j)` order. A move is applied only if :math:`\Delta < -\text{tolerance}\cdot L_0`
    (:math:`L_0` the input tour's length), so tours get strictly shorter and the search terminates.
    With best improvement the result equals the sequential loop that applies the best move per instance
    until none improves. No gradients are recorded.

    Args:
        coords: ``[B, n, D]`` city coordinates (Euclidean distances), or ``None`` with ``distances``.
        tours: ``[B, n]`` long, a permutation of ``0 .. n-1`` per row (the order of visits).
        max_iterations: the most moves per instance; ``None``: until no instance improves.
            (default: ``None``)
        first_improvement: apply the first improving move instead of the best. (default: ``False``)
        distances: ``[B, n, n]`` symmetric distances to use instead of the Euclidean ones (e.g. TSPLIB's
            rounded distances). (default: ``None``)
        tolerance: relative improvement threshold; ``None``: :math:`n\,\varepsilon` of the dtype.
            (default: ``None``)
        backend: ``"auto"`` (the kernel for CUDA tensors, torch otherwise), ``"torch"`` or ``"triton"`` (the
            kernel of :mod:`geoattn.kernels.two_opt`; CUDA tensors, or CPU tensors under
            ``TRITON_INTERPRET=1``); every backend gives the same tours. The kernel runs the
            best-improvement search on float32/float64 distances; ``first_improvement=True`` and other
            dtypes run in torch. (default: ``"auto"``)

    Returns:
        :class:`LocalSearchResult` ``(tours [B, n], lengths [B])``; tours are never longer than the input.

    Memory and time: see :mod:`geoattn.solvers.local_search`.
    """
    inputs = [t for t in (tours, coords, distances) if t is not None]
    which = resolve_backend(backend, *inputs, op="two_opt", implemented=TRITON_IMPLEMENTED)
    use_kernel = which == "triton" and not first_improvement
    run = _two_opt_kernel if use_kernel else _batched(_two_opt_step, first_improvement)
    return _search("two_opt", coords, tours, distances, max_iterations, tolerance, run)


def or_opt(
    coords: torch.Tensor | None,
    tours: torch.Tensor,
    *,
    max_iterations: int | None = None,
    first_improvement: bool = False,
    max_segment: int = 3,
    distances: torch.Tensor | None = None,
    tolerance: float | None = None,
    backend: Backend = "auto",
) -> LocalSearchResult:
    r"""Or-opt local search: move a segment of 1 to ``max_segment`` consecutive cities elsewhere, maybe reversed.

    Move :math:`(s, i, j)` takes :math:`a = t_i \dots b = t_{i+s-1}` out (its neighbours :math:`p = t_{i-1}`,
    :math:`q = t_{i+s}` are joined) and puts it between :math:`c = t_j` and :math:`d = t_{j+1}`:

    .. math::
        \Delta = D_{pq} - D_{pa} - D_{bq} + D_{ca} + D_{bd} - D_{cd}
        \quad\text{(reversed: } D_{cb} + D_{ad} \text{ in place of } D_{ca} + D_{bd}\text{)},

    for :math:`(j - i) \bmod n \in [s, n - 2]` (the edge :math:`(c, d)` lies outside the segment and its
    two removed edges). Per iteration and instance the best move over all :math:`s`, both orientations
    and all :math:`(i, j)` is applied (ties: smaller :math:`s`, forward before reversed, then row-major
    :math:`(i, j)`), or with ``first_improvement=True`` the first improving one in that order. The new
    tour starts at the city after the segment's old place (tours are cyclic). Arguments, the tolerance
    and the result are as for :func:`two_opt`.

    Args:
        max_segment: the longest segment moved (Or-opt's classic 3). (default: ``3``)
        backend: as for :func:`two_opt`, but Or-opt has no Triton kernel yet: ``"auto"`` and ``"torch"``
            run torch, ``"triton"`` raises ``NotImplementedError``. (default: ``"auto"``)
    """
    resolve_backend(backend, tours, op="or_opt", implemented=False)
    if max_segment < 1:
        raise ValueError(f"or_opt: max_segment must be >= 1, got {max_segment}")

    def step(
        p: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return _or_opt_step(p, tours, tol, first, max_segment)

    return _search(
        "or_opt", coords, tours, distances, max_iterations, tolerance, _batched(step, first_improvement)
    )
