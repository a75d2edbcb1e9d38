"""The batched 2-opt Triton kernel against the torch search: identical tours, bitwise.

Without CUDA the kernel runs on CPU tensors through Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``), so instances are tiny; every test taking ``device`` also runs compiled on the GPU
host (``pytest -m gpu``), where the ``cpu`` variants are skipped (no interpreter there).
"""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from kernels_helpers import city_points

from geoattn.kernels import KERNELS
from geoattn.kernels import two_opt as two_opt_pkg
from geoattn.kernels.backend import triton_interpreting
from geoattn.kernels.two_opt import kernel as two_opt_kernel
from geoattn.kernels.two_opt import two_opt_search, two_opt_search_reference
from geoattn.solvers import or_opt, two_opt

DEVICES = [
    pytest.param(
        "cpu", marks=pytest.mark.skipif(not triton_interpreting(), reason="CPU runs need TRITON_INTERPRET=1")
    ),
    pytest.param("cuda", marks=pytest.mark.gpu),
]


def _instances(
    batch: int,
    n: int,
    seed: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    kind: str = "uniform",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``coords [B, n, 2]`` (:func:`kernels_helpers.city_points` of ``kind``) and random tours ``[B, n]``."""
    coords = city_points(batch, n, seed, kind=kind, dtype=dtype, device=device)
    g = torch.Generator().manual_seed(seed + 1)
    tours = torch.stack([torch.randperm(n, generator=g) for _ in range(batch)])
    return coords, tours.to(device)


def _length(coords: torch.Tensor, tour: list[int]) -> float:
    """Independent closed-tour length of one instance, in Python floats."""
    pts = coords.double().tolist()
    return sum(math.dist(pts[a], pts[b]) for a, b in zip(tour, tour[1:] + tour[:1], strict=True))


def _assert_same_as_torch(coords: torch.Tensor, tours: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Triton and torch give the same tours and lengths, bitwise; the tours are permutations, never
    longer than the input (by an independent length), and the input is not modified. Returns the tours."""
    before = tours.clone()
    got = two_opt(coords, tours, backend="triton", **kwargs)
    expected = two_opt(coords, tours, backend="torch", **kwargs)
    assert torch.equal(got.tours, expected.tours)
    assert torch.equal(got.lengths, expected.lengths)
    assert torch.equal(tours, before)
    batch, n = tours.shape
    assert torch.equal(got.tours.sort(dim=1).values, torch.arange(n, device=tours.device).expand(batch, n))
    for b in range(batch):
        new, old = _length(coords[b], got.tours[b].tolist()), _length(coords[b], tours[b].tolist())
        assert new <= old + 1e-9
        assert got.lengths[b].item() == pytest.approx(new, rel=1e-5)
    return got.tours


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,batch", [(3, 2), (4, 3), (5, 4), (17, 3)])
def test_same_tours_as_torch(device: str, dtype: torch.dtype, n: int, batch: int) -> None:
    coords, tours = _instances(batch, n, seed=n, dtype=dtype, device=device)
    out = _assert_same_as_torch(coords, tours)
    if n >= 5:  # random tours of 5+ cities are improvable
        assert not torch.equal(out, tours)


@pytest.mark.parametrize("device", DEVICES)
def test_n130_several_tiles(device: str) -> None:
    """More rows and columns than one tile (16 x 64 here), a tile boundary inside the triangle."""
    coords, tours = _instances(1, 130, seed=130, device=device)
    _assert_same_as_torch(coords, tours)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["duplicates", "collinear"])
def test_duplicates_and_collinear_points(device: str, kind: str) -> None:
    """Zero-length edges and many equal deltas: the tie-breaking must agree move for move."""
    coords, tours = _instances(3, 14, seed=7, device=device, kind=kind)
    _assert_same_as_torch(coords, tours)
    same = torch.zeros(1, 6, 2, device=device)  # all cities at one point: nothing improves
    order = torch.tensor([[3, 1, 5, 0, 2, 4]], device=device)
    assert torch.equal(two_opt(same, order, backend="triton").tours, order)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,batch,seed,scale", [(12, 4, 3, 4.0), (40, 4, 2, 2.0)])
def test_integer_distances_break_ties_like_torch(
    device: str, n: int, batch: int, seed: int, scale: float
) -> None:
    """Rounded (TSPLIB-style) distances make many moves tie exactly: the first in row-major order wins,
    within a tile and (n = 40: 3 x 2 tiles of 16 x 32; a lane keeping its last tie instead fails) between
    tiles."""
    coords, tours = _instances(batch, n, seed=seed, dtype=torch.float64, device=device)
    rounded = ((coords[:, :, None] - coords[:, None]).norm(dim=-1) * scale).round()
    got = two_opt(None, tours, distances=rounded.transpose(1, 2), backend="triton")  # a strided view
    expected = two_opt(None, tours, distances=rounded, backend="torch")
    assert torch.equal(got.tours, expected.tours) and torch.equal(got.lengths, expected.lengths)


@pytest.mark.parametrize("device", DEVICES)
def test_max_iterations_and_tolerance(device: str) -> None:
    coords, tours = _instances(3, 10, seed=5, device=device)
    previous = tours
    for max_iterations in (0, 1, 2, 3):
        out = _assert_same_as_torch(coords, tours, max_iterations=max_iterations)
        for b in range(3):  # k moves are one segment reversal more than k - 1 (these tours need 3+ moves)
            old, new = previous[b].tolist(), out[b].tolist()
            changed = [p for p in range(10) if old[p] != new[p]]
            if max_iterations == 0:
                assert not changed
            else:
                assert (
                    changed and new[changed[0] : changed[-1] + 1] == old[changed[0] : changed[-1] + 1][::-1]
                )
        previous = out
    # The kernel's own cap: moves = k, counted by chaining k single moves.
    d = (coords[:, :, None] - coords[:, None]).norm(dim=-1)
    tol = torch.zeros(3, device=device)
    chained = tours
    for _ in range(3):
        chained = two_opt_search(d, chained, tol, max_iterations=1, backend="triton")
    assert torch.equal(chained, two_opt_search(d, tours, tol, max_iterations=3, backend="triton"))
    assert torch.equal(chained, two_opt_search_reference(d, tours, tol, max_iterations=3))
    # A threshold of the whole tour length can never be met; tolerance 0 still agrees with torch.
    assert torch.equal(two_opt(coords, tours, tolerance=1.0, backend="triton").tours, tours)
    _assert_same_as_torch(coords, tours, tolerance=0.0)


@pytest.mark.parametrize("device", DEVICES)
def test_per_instance_thresholds(device: str) -> None:
    """``two_opt_search`` with its own ``tol`` per instance: 0, moderate and unreachable."""
    coords, tours = _instances(3, 9, seed=11, dtype=torch.float64, device=device)
    d = (coords[:, :, None] - coords[:, None]).norm(dim=-1)
    tol = torch.tensor([0.0, 0.05, 1e9], dtype=torch.float64, device=device)
    got = two_opt_search(d, tours, tol, backend="triton")
    assert torch.equal(got, two_opt_search_reference(d, tours, tol))
    assert torch.equal(got[2], tours[2]) and not torch.equal(got[0], tours[0])


# ---------------------------------------------------------------------------------------------------------
# Backend selection and errors (CPU)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the tours each call of the Triton path got (the kernel still runs)."""
    calls: list[tuple[int, ...]] = []
    real = two_opt_kernel.two_opt_search_triton

    def spy(*args: Any) -> torch.Tensor:
        calls.append(tuple(args[1].shape))
        return real(*args)

    monkeypatch.setattr(two_opt_kernel, "two_opt_search_triton", spy)
    return calls


def test_cpu_auto_first_improvement_and_float16_use_torch(kernel_calls: list[tuple[int, ...]]) -> None:
    coords, tours = _instances(2, 8, seed=2)
    assert torch.equal(two_opt(coords, tours).tours, two_opt(coords, tours, backend="torch").tours)
    first = two_opt(
        coords, tours, first_improvement=True, backend="triton" if triton_interpreting() else "auto"
    )
    assert torch.equal(first.tours, two_opt(coords, tours, first_improvement=True, backend="torch").tours)
    d16 = (coords[:, :, None] - coords[:, None]).norm(dim=-1).half()
    tol = torch.zeros(2, dtype=torch.float16)
    if triton_interpreting():
        assert torch.equal(
            two_opt_search(d16, tours, tol, backend="triton"), two_opt_search_reference(d16, tours, tol)
        )
    assert not kernel_calls


def test_or_opt_takes_the_keyword_but_has_no_kernel() -> None:
    coords, tours = _instances(2, 7, seed=6)
    with pytest.raises(NotImplementedError, match="or_opt: no Triton kernel"):
        or_opt(coords, tours, backend="triton")
    with pytest.raises(ValueError, match="or_opt: backend must be one of"):
        or_opt(coords, tours, backend="cuda")  # type: ignore[arg-type]
    assert (
        or_opt(coords, tours, backend="auto").lengths < two_opt(coords, tours, max_iterations=0).lengths
    ).all()


def test_triton_without_cuda_or_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    coords, tours = _instances(1, 6, seed=0)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        two_opt(coords, tours, backend="triton")


def _args() -> dict[str, Any]:
    coords, tours = _instances(2, 6, seed=1)
    return {
        "distances": (coords[:, :, None] - coords[:, None]).norm(dim=-1),
        "tours": tours,
        "tol": torch.zeros(2),
    }


@pytest.mark.parametrize(
    "change,error,match",
    [
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        (
            {"distances": torch.zeros(2, 6, 5)},
            ValueError,
            r"distances \[B, n, n\] and tours \[B, n\] must agree",
        ),
        ({"tours": torch.zeros(2, 6)}, ValueError, "tours must be long"),
        ({"distances": torch.zeros(2, 6, 6, dtype=torch.long)}, ValueError, "distances floating point"),
        ({"tol": torch.zeros(3)}, ValueError, r"tol must have shape \[2\]"),
        ({"max_iterations": -1}, ValueError, "max_iterations must be None or >= 0"),
        ({"tol": torch.zeros(2, device="meta")}, ValueError, "must be on one device"),
    ],
)
def test_invalid_arguments_are_named(change: dict[str, Any], error: type[Exception], match: str) -> None:
    args = _args() | {"backend": "triton"} | change
    with pytest.raises(error, match=match):
        two_opt_search(**args)
    if "backend" in change:
        with pytest.raises(error, match=match):
            two_opt(None, args["tours"], distances=args["distances"], backend=change["backend"])


@pytest.mark.skipif(not triton_interpreting(), reason="CPU runs need TRITON_INTERPRET=1")
def test_kernel_size_limit_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(two_opt_kernel, "MAX_N", 5)
    with pytest.raises(ValueError, match="takes n <= 5"):
        two_opt_search(**_args(), backend="triton")


def test_public_surface() -> None:
    assert "two_opt" in KERNELS and two_opt_pkg.TRITON_IMPLEMENTED
    assert two_opt_pkg.two_opt_search_reference is two_opt_search_reference


def test_benchmark_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/tsp/two_opt.py --smoke: torch, Triton (interpreter) and numpy agree and a report is written."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    bench = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "tsp" / "two_opt.py"))
    out = tmp_path / "tsp_two_opt.md"
    assert bench["main"](["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line.strip(" |").split("|") for line in printed.splitlines() if line[:3] in ("| 5", "| 1")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("5", "1"), ("5", "3"), ("12", "1"), ("12", "3")]
    assert all(r[-1].strip() == "yes" and float(r[3].replace(",", "")) > 0 for r in rows), printed
    report = out.read_text()
    assert "seed: 0" in report and "git:" in report


# ---------------------------------------------------------------------------------------------------------
# GPU only: sizes of the benchmark, what auto picks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("n,batch", [(50, 256), (200, 64), (500, 8), (1000, 2)])
def test_gpu_benchmark_sizes(n: int, batch: int) -> None:
    coords, tours = _instances(batch, n, seed=n, device="cuda")
    got = two_opt(coords, tours, backend="triton")
    expected = two_opt(coords, tours, backend="torch")
    assert torch.equal(got.tours, expected.tours) and torch.equal(got.lengths, expected.lengths)
    assert (got.lengths < two_opt(coords, tours, max_iterations=0).lengths).all()


@pytest.mark.gpu
def test_gpu_auto_runs_the_kernel_for_best_improvement_on_cuda(kernel_calls: list[tuple[int, ...]]) -> None:
    """The kernel has passed its compiled GPU tests, so solvers.two_opt's "auto" picks it for CUDA tensors;
    first improvement and CPU tensors stay in torch."""
    coords, tours = _instances(2, 20, seed=4, device="cuda")
    assert two_opt(coords, tours).tours.is_cuda
    two_opt(coords, tours, first_improvement=True)
    two_opt(coords.cpu(), tours.cpu())
    assert kernel_calls == [(2, 20)]


def test_info_says_auto_uses_the_verified_kernel_on_cuda() -> None:
    from geoattn.environment import kernel_backend
    from geoattn.kernels.backend import UNVERIFIED_ON_GPU

    assert "two_opt" not in UNVERIFIED_ON_GPU
    assert kernel_backend("two_opt", cuda=True).startswith("triton")
