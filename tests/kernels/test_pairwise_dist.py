"""The pairwise-distance Triton kernel against its torch reference: values and every gradient.

Without CUDA the kernel runs on CPU tensors through Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``), so sizes are tiny but awkward: N, M not multiples of the block (16 under the
interpreter), D not a power of two and larger than one D chunk. The reference is evaluated in float64 on the
same (rounded) inputs. Every buffer the kernels must write in full is poisoned with NaN first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import triton
import triton.language as tl
from benchmarks_helpers import BENCHMARKS, load_script

from geoattn.kernels import pairwise_dist as pd_pkg
from geoattn.kernels import triton_math
from geoattn.kernels.pairwise_dist import kernel as pd_kernel
from geoattn.kernels.pairwise_dist import pairwise_dist, pairwise_sqdist
from geoattn.kernels.pairwise_dist.reference import pairwise_dist_reference, pairwise_sqdist_reference
from geoattn.manifolds.stereographic import artan_ratio, tan_ratio

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(autouse=True)
def poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every buffer the kernels must write in full starts as NaN, so an unwritten element fails."""

    def nan_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(pd_kernel, "_empty", nan_empty)


def _points(shape: tuple[int, ...], k_max: float, gen: torch.Generator) -> torch.Tensor:
    """float64 points with norms up to 0.7 of the radius ``1/sqrt(|k|)`` of the most curved row (inside
    every ball; tangent vectors stay below the ``tan`` pole for ``k > 0``)."""
    direction = torch.randn(shape, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    fraction = torch.rand((*shape[:-1], 1), generator=gen, dtype=torch.float64)
    return direction * fraction * 0.7 / math.sqrt(max(k_max, 1.0))


def _compare(
    x64: torch.Tensor,
    y64: torch.Tensor,
    k64: torch.Tensor | float,
    *,
    squared: bool,
    y_tangent: bool,
    dtype: torch.dtype,
    rtol: float,
    grad_rtol: float,
    seed: int = 0,
    x_transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
) -> None:
    """Triton in ``dtype`` against the float64 reference on the same rounded inputs: output and grads of
    ``sum(w * out)`` for a random ``w``, with tolerances relative to each tensor's largest entry."""
    x_in = x64.to(dtype).to(DEVICE).requires_grad_()
    y_in = y64.to(dtype).to(DEVICE).requires_grad_()
    k_in = k64.to(dtype).to(DEVICE).requires_grad_() if isinstance(k64, torch.Tensor) else k64
    out = pairwise_dist(
        x_transform(x_in), y_in, k=k_in, squared=squared, y_tangent=y_tangent, backend="triton"
    )
    assert out.dtype == dtype and out.device.type == DEVICE.type

    xr = x_in.detach().double().requires_grad_()
    yr = y_in.detach().double().requires_grad_()
    kr = k_in.detach().double().requires_grad_() if isinstance(k_in, torch.Tensor) else k_in
    reference = pairwise_sqdist_reference if squared else pairwise_dist_reference
    ref = reference(x_transform(xr), yr, k=kr, y_tangent=y_tangent)
    assert out.shape == ref.shape

    def close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
        assert torch.isfinite(actual).all(), f"{what}: non-finite entries"
        scale = expected.abs().max().item() + 1e-30
        torch.testing.assert_close(
            actual.double(), expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}"
        )

    close(out, ref, rtol, "output")
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(DEVICE)
    inputs = [x_in, y_in] + ([k_in] if isinstance(k_in, torch.Tensor) else [])
    ref_inputs = [xr, yr] + ([kr] if isinstance(kr, torch.Tensor) else [])
    grads = torch.autograd.grad((out * w.to(dtype)).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * w).sum(), ref_inputs)
    for name, g, gr in zip("xyk", grads, ref_grads, strict=False):
        assert g.dtype == dtype and g.shape == gr.shape
        close(g, gr, grad_rtol, f"grad {name}")


def _k(value: float | list[float], shape: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64).reshape(shape)


# (x shape, y shape, k, squared, y_tangent): scalar k of every sign (tiny ones use the series), per batch,
# per row with mixed signs, y shared by the batch, y batched, partial broadcasts, x shared by the batch.
FLOAT32_CASES = {
    "k<0 float": ((19, 5), (13, 5), -1.0, False, False),
    "k<0 tensor sq": ((19, 7), (17, 7), _k(-1.3), True, False),
    "k=0 sq": ((17, 19), (5, 19), _k(0.0), True, False),
    "k=0 tangent": ((6, 7), (18, 7), _k(0.0), False, True),
    "k=+tiny tangent": ((19, 5), (13, 5), _k(1e-7), False, True),
    "k=-tiny": ((19, 7), (17, 7), _k(-1e-7), False, False),
    "k>0 sq tangent": ((9, 19), (17, 19), _k(0.8), True, True),
    "k per batch, y shared": ((2, 17, 19), (13, 19), _k([-1.2, 0.6], (2, 1, 1)), False, False),
    "k per row, y batched, tangent": (
        (2, 6, 7),
        (2, 17, 7),
        _k([-1.5, -0.3, -1e-7, 0.0, 2e-4, 0.9] * 2, (2, 6, 1)),
        False,
        True,
    ),
    "partial broadcast, k per head": (
        (3, 1, 6, 7),
        (4, 9, 7),
        _k([-1.0, -0.02, 0.05, 1.1], (4, 1, 1)),
        True,
        False,
    ),
    "x shared by batch": ((6, 7), (3, 9, 7), _k([-0.7, 0.0, 0.4], (3, 1, 1)), False, False),
}


@pytest.mark.parametrize("case", list(FLOAT32_CASES), ids=list(FLOAT32_CASES))
def test_float32_matches_reference(case: str) -> None:
    torch.manual_seed(0)
    x_shape, y_shape, k, squared, y_tangent = FLOAT32_CASES[case]
    k_max = float(k.abs().max()) if isinstance(k, torch.Tensor) else abs(k)
    gen = torch.Generator().manual_seed(len(case))
    x = _points(x_shape, k_max, gen)
    y = _points(y_shape, k_max, gen)
    _compare(x, y, k, squared=squared, y_tangent=y_tangent, dtype=torch.float32, rtol=1e-5, grad_rtol=2e-5)


def test_non_contiguous_x() -> None:
    """Strided inputs: x is a transposed view [N, D] of a [D, N] tensor."""
    gen = torch.Generator().manual_seed(3)
    x_t = _points((19, 7), 1.0, gen).T.contiguous()  # [D, N]
    y = _points((17, 7), 1.0, gen)
    _compare(
        x_t, y, _k(-0.9), squared=False, y_tangent=False, dtype=torch.float32, rtol=1e-5, grad_rtol=2e-5,
        x_transform=lambda t: t.transpose(-1, -2),
    )  # fmt: skip


@pytest.mark.parametrize(
    "dtype,y_tangent", [(torch.bfloat16, False), (torch.bfloat16, True), (torch.float16, False)]
)
def test_half_precision_matches_reference(dtype: torch.dtype, y_tangent: bool) -> None:
    """Computed in float32 from half-precision inputs; the output and gradients are rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(4)
    x = _points((2, 17, 19), 1.5, gen)
    y = _points((13, 19), 1.5, gen)
    k = _k([-1.5, 0.7], (2, 1, 1))
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    _compare(x, y, k, squared=False, y_tangent=y_tangent, dtype=dtype, rtol=tol, grad_rtol=2 * tol)


@pytest.mark.parametrize("squared", [False, True])
def test_coincident_points_have_the_reference_gradient(squared: bool) -> None:
    """Dyadic coordinates make the Gram cancellation exact: d(x_i, x_i) = 0 and, as in the reference's
    guarded sqrt, the distance's gradient there is 0 (finite either way)."""
    x = torch.tensor([[0.5, -0.25, 0.125], [0.25, 0.0, -0.5], [-0.125, 0.375, 0.25]], dtype=torch.float32)
    x_in = x.to(DEVICE).requires_grad_()
    out = pairwise_dist(x_in, x_in, k=-1.0, squared=squared, backend="triton")
    assert (out.diagonal() == 0).all()
    (grad,) = torch.autograd.grad(out.sum(), x_in)
    xr = x.double().requires_grad_()
    ref = (pairwise_sqdist_reference if squared else pairwise_dist_reference)(xr, xr, k=-1.0)
    (grad_ref,) = torch.autograd.grad(ref.sum(), xr)
    torch.testing.assert_close(grad.double().cpu(), grad_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("squared", [False, True])
def test_antipodal_points_hold_the_denominator(squared: bool) -> None:
    """On the sphere (k = 1) x = (0.5, 0, 0) and y = (-2, 0, 0) are antipodal: the denominator is exactly 0
    and held at MIN_DENOM, where it passes no gradient (as the reference's clamp). Compared with the float32
    reference, whose MIN_DENOM is the kernel's."""
    x = torch.tensor([[0.5, 0.0, 0.0], [0.1, 0.2, -0.3]])
    y = torch.tensor([[-2.0, 0.0, 0.0], [0.3, -0.1, 0.2], [0.0, 0.4, 0.1]])
    reference = pairwise_sqdist_reference if squared else pairwise_dist_reference
    ref_in = [x.clone().requires_grad_(), y.clone().requires_grad_(), torch.tensor(1.0, requires_grad=True)]
    ref = reference(ref_in[0], ref_in[1], k=ref_in[2])
    ins = [t.detach().to(DEVICE).requires_grad_() for t in ref_in]
    out = pairwise_dist(ins[0], ins[1], k=ins[2], squared=squared, backend="triton")
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)
    assert abs(out[0, 0].item() - (math.pi if not squared else math.pi**2)) < 1e-4
    for g, gr in zip(
        torch.autograd.grad(out.sum(), ins), torch.autograd.grad(ref.sum(), ref_in), strict=True
    ):
        torch.testing.assert_close(g.cpu(), gr, rtol=1e-4, atol=1e-5)


def test_points_outside_the_ball_stay_finite() -> None:
    """Beyond the ball the artanh argument is clamped (a finite, constant distance); nothing is NaN."""
    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(9, 5, generator=gen) * 2.0).to(DEVICE).requires_grad_()
    y = (torch.randn(7, 5, generator=gen) * 2.0).to(DEVICE).requires_grad_()
    k = torch.tensor(-1.0, device=DEVICE, requires_grad=True)
    out = pairwise_dist(x, y, k=k, backend="triton")
    grads = torch.autograd.grad(out.sum(), (x, y, k))
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("needs", ["x", "y", "k", "none"])
def test_gradients_of_a_subset_of_inputs(needs: str) -> None:
    """Only the inputs that require grad get one (the others cost nothing); values still match."""
    gen = torch.Generator().manual_seed(6)
    x64, y64 = _points((2, 6, 5), 1.0, gen), _points((2, 18, 5), 1.0, gen)
    k64 = _k([-0.5, 0.3], (2, 1, 1))
    x, y, k = (
        t.float().to(DEVICE).requires_grad_(needs == name)
        for name, t in zip("xyk", (x64, y64, k64), strict=True)
    )
    out = pairwise_dist(x, y, k=k, y_tangent=True, backend="triton")
    ref_in = [
        t.detach().double().requires_grad_(needs == name) for name, t in zip("xyk", (x, y, k), strict=True)
    ]
    ref = pairwise_dist_reference(ref_in[0], ref_in[1], k=ref_in[2], y_tangent=True)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    if needs == "none":
        assert not out.requires_grad
        return
    target = {"x": x, "y": y, "k": k}[needs]
    (grad,) = torch.autograd.grad(out.square().sum(), target)
    (grad_ref,) = torch.autograd.grad(ref.square().sum(), ref_in["xyk".index(needs)])
    torch.testing.assert_close(grad.double(), grad_ref, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("x_shape,y_shape", [((0, 4), (5, 4)), ((3, 4), (0, 4)), ((0, 3, 4), (5, 4))])
def test_empty_inputs(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    x = torch.zeros(x_shape, device=DEVICE, requires_grad=True)
    y = torch.zeros(y_shape, device=DEVICE, requires_grad=True)
    out = pairwise_dist(x, y, k=-1.0, backend="triton")
    assert out.shape == (*x_shape[:-2], x_shape[-2], y_shape[-2])
    gx, gy = torch.autograd.grad(out.sum(), (x, y))
    assert gx.shape == x.shape and gy.shape == y.shape


# ---------------------------------------------------------------------------------------------------------
# The elementary functions built from core ops (no libdevice), against float64 torch
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _elementary_kernel(w_ptr, out_ptr, n, artanh_bound, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    a = triton_math.artan_ratio(w, artanh_bound)
    t = triton_math.tan_ratio(w)
    tl.store(out_ptr + 0 * n + offs, a, mask=mask)
    tl.store(out_ptr + 1 * n + offs, triton_math.artan_ratio_grad(w, a, artanh_bound), mask=mask)
    tl.store(out_ptr + 2 * n + offs, t, mask=mask)
    tl.store(out_ptr + 3 * n + offs, triton_math.tan_ratio_grad(w, t), mask=mask)
    tl.store(out_ptr + 4 * n + offs, triton_math.atan_nonneg(tl.abs(w) * 10.0), mask=mask)


def _elementary(w: torch.Tensor, bound: float) -> torch.Tensor:
    out = torch.full((5, w.numel()), float("nan"), dtype=torch.float32, device=w.device)
    _elementary_kernel[(1,)](w, out, w.numel(), bound, BLOCK=triton.next_power_of_2(w.numel()))
    return out.double().cpu()


def test_elementary_functions_match_float64() -> None:
    """A, A', T, T' and atan on both sides of both series thresholds (0.01 for values, 0.2 for derivatives),
    from w = -0.98 (inside the ball: the artanh clamp is not reached) to w = 2.4 (tan's pole is at 2.47)."""
    edges = torch.tensor([0.0, 9.99e-3, 1.001e-2, 0.0199, 0.1999, 0.2001, 0.5, 0.99, 1.0, 1.01, 2.4])
    w32 = torch.cat([torch.linspace(-0.98, 2.4, 200), edges, -edges[:8]]).float()  # inside the ball: w > -1
    got = _elementary(w32.to(DEVICE), 1.0 - 1e-7)
    w = w32.double().requires_grad_()
    expected = []
    for fn in (artan_ratio, tan_ratio):
        value = fn(w)
        (deriv,) = torch.autograd.grad(value.sum(), w)
        expected += [value.detach(), deriv]
    expected.append(torch.atan(w.detach().abs() * 10.0))
    names = ["A", "A'", "T", "T'", "atan"]
    # float32 rounding of w alone costs ~ cond * eps: A near w = -1 (artanh near 1), T and T' near the pole.
    tols = [1e-6, 2e-6, 3e-6, 5e-6, 3e-7]
    for name, g, e, tol in zip(names, got, expected, tols, strict=True):
        torch.testing.assert_close(g, e, rtol=tol, atol=0.0, msg=lambda m, name=name: f"{name}: {m}")


def test_artanh_clamp_and_its_gradient() -> None:
    """For w < -bound^2 the argument is clamped: A = artanh(bound)/sqrt(-w) and A' = A / (2|w|)."""
    bound = 0.99
    w = torch.tensor([-0.9802, -1.0, -1.7, -25.0])
    got = _elementary(w.to(DEVICE), bound)
    w64 = w.double()
    a = math.atanh(bound) / (-w64).sqrt()
    torch.testing.assert_close(got[0], a, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(got[1], a / (2 * w64.abs()), rtol=1e-6, atol=0.0)


# ---------------------------------------------------------------------------------------------------------
# Backend selection and errors
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the Triton path is taken."""

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the Triton kernel was called")

    monkeypatch.setattr(pd_kernel, "pairwise_dist_triton", boom)
    yield


def _xy(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(9)
    return _points((5, 3), 1.0, gen).to(dtype), _points((4, 3), 1.0, gen).to(dtype)


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cpu_auto_and_torch_use_the_reference(backend: str) -> None:
    x, y = _xy()
    torch.testing.assert_close(
        pairwise_dist(x, y, k=-0.5, backend=backend), pairwise_dist_reference(x, y, k=-0.5)
    )
    torch.testing.assert_close(
        pairwise_sqdist(x, y, k=-0.5, backend=backend), pairwise_sqdist_reference(x, y, k=-0.5)
    )


@pytest.mark.usefixtures("no_kernel")
def test_float64_uses_the_reference_even_with_triton() -> None:
    x, y = (t.to(DEVICE) for t in _xy(torch.float64))
    out = pairwise_dist(x, y, k=0.3, backend="triton")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, pairwise_dist_reference(x, y, k=0.3), rtol=0, atol=0)


def test_triton_without_cuda_or_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, y = _xy()
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        pairwise_dist(x, y, k=-1.0, backend="triton")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"y": torch.zeros(4, 2)}, ValueError, "need the same D"),
        ({"k": torch.zeros(3, 1)}, ValueError, "k of shape"),
        ({"k": torch.zeros(5, 2)}, ValueError, "k of shape"),
        ({"squared": 1}, TypeError, "squared must be a bool"),
        ({"y": torch.zeros(4, 3, dtype=torch.float64)}, TypeError, "share a dtype"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    x, y = _xy()
    args: dict[str, Any] = {"y": y, "k": -1.0, "backend": "triton"} | kwargs
    with pytest.raises(error, match=match):
        pairwise_dist(x, **args)


def test_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/pairwise_dist.py --smoke runs (kernel, reference, geoopt), prints and writes its table."""
    bench = load_script(BENCHMARKS / "pairwise_dist.py", "bench_pairwise_dist")
    out = tmp_path / "pairwise_dist.md"
    argv = [
        "--smoke",
        "--sizes",
        "19x23x7",
        "--dtypes",
        "float32",
        "--warmup",
        "1",
        "--rep",
        "3",
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| 19x23x7") and "| fwd " in line)
    errors = [float(c) for c in row.strip(" |").split("|")[-3:]]
    assert all(e < 1e-5 for e in errors), row
    report = out.read_text()
    assert "| 19x23x7" in report and "seed: 0" in report and "git:" in report


def test_public_surface() -> None:
    assert pd_pkg.pairwise_dist_reference is pairwise_dist_reference
    assert set(pd_pkg.__all__) >= {"pairwise_dist", "pairwise_sqdist", "pairwise_dist_reference"}
    assert pd_pkg.TRITON_IMPLEMENTED


# ---------------------------------------------------------------------------------------------------------
# GPU: compiled kernels, autotuned configs, larger sizes (run on the GPU host with `pytest -m gpu`)
# ---------------------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: (1e-5, 5e-5), torch.bfloat16: (1e-2, 3e-2), torch.float16: (2e-3, 5e-3)}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(GPU_TOL))
@pytest.mark.parametrize("y_tangent,squared", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("d", [37, 128])
def test_gpu_matches_reference(dtype: torch.dtype, y_tangent: bool, squared: bool, d: int) -> None:
    """Several tiles and D chunks, per-row curvature of both signs, y shared by a batch of 3."""
    gen = torch.Generator().manual_seed(11)
    x = _points((3, 300, d), 2.0, gen)
    y = _points((517, d), 2.0, gen)
    k = (torch.rand(3, 300, 1, generator=gen, dtype=torch.float64) * 4.0 - 2.0).where(
        torch.rand(3, 300, 1, generator=gen) > 0.1, torch.tensor(0.0, dtype=torch.float64)
    )
    rtol, grad_rtol = GPU_TOL[dtype]
    _compare(x, y, k, squared=squared, y_tangent=y_tangent, dtype=dtype, rtol=rtol, grad_rtol=grad_rtol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_kg_scoring_shape(dtype: torch.dtype) -> None:
    """1-N scoring shape of WN18RR (40943 entities, D = 32), a slice of the query batch."""
    gen = torch.Generator().manual_seed(12)
    x = _points((256, 32), 1.0, gen)
    y = _points((40943, 32), 1.0, gen)
    k = _k(-1.0)
    rtol, grad_rtol = GPU_TOL[dtype]
    _compare(x, y, k, squared=False, y_tangent=True, dtype=dtype, rtol=rtol, grad_rtol=grad_rtol)


@pytest.mark.gpu
def test_gpu_auto_picks_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = pd_kernel.pairwise_dist_triton

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pd_kernel, "pairwise_dist_triton", spy)
    x, y = (t.cuda() for t in _xy())
    out = pairwise_dist(x, y, k=-1.0)
    assert calls and out.is_cuda
    with pytest.raises(ValueError, match="same device"):
        pairwise_dist(x, y.cpu(), k=-1.0)
