"""The fused manifold-attention Triton kernels against the float64 torch reference: output and every gradient.

Every test is parametrised over the device: ``interpreter`` (CPU tensors through Triton's interpreter, set up
by ``tests/conftest.py`` where there is no CUDA; tiny sizes) and ``cuda`` (compiled kernels, marked ``gpu``:
``pytest -m gpu`` on the GPU host). Three heads per call carry one curvature sign each (k < 0, k = 0, k > 0),
so every case checks all three geometries. Sizes are awkward (N = 1, 17, 63; D = 16, 40: not multiples of
the 16-wide interpreter tiles); buffers the kernels must write in full are poisoned with NaN first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from benchmarks_helpers import BENCHMARKS, load_script

import geoattn.manifolds as gm
from geoattn.kernels.backend import Backend
from geoattn.kernels.manifold_attention import (
    cat_attention,
    cat_attention_reference,
    manifold_attention,
    manifold_attention_reference,
)
from geoattn.kernels.manifold_attention import kernel as ma_kernel
from geoattn.nn import CurvatureAdaptiveAttention

CURVATURES = (-1.3, 0.0, 0.7)
_CUDA = torch.cuda.is_available()
# The interpreter variant exists only where conftest turned the interpreter on (no CUDA); the compiled
# variant is skipped by conftest where there is no CUDA device.
DEVICES = [pytest.param("cuda", marks=pytest.mark.gpu, id="cuda")] + (
    [] if _CUDA else [pytest.param("cpu", id="interpreter")]
)
# (output, gradient) tolerances relative to each tensor's largest entry, per input dtype.
TOL = {torch.float32: (2e-5, 2e-4), torch.bfloat16: (3e-2, 8e-2), torch.float16: (4e-3, 1e-2)}


@pytest.fixture(autouse=True)
def poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every buffer the kernels must write in full starts as NaN, so an unwritten element fails."""

    def nan_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(ma_kernel, "_empty", nan_empty)


def _points(
    shape: tuple[int, ...], kappa: torch.Tensor, gen: torch.Generator, fraction: float = 0.5
) -> torch.Tensor:
    """float64 points on each head's manifold (heads on dim 1): norms up to ``fraction`` of the ball's
    radius for k < 0, ``expmap0`` of tangent vectors of norm up to ``fraction`` otherwise."""
    direction = torch.randn(shape, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radius = torch.rand((*shape[:-1], 1), generator=gen, dtype=torch.float64) * fraction
    k3 = kappa.view(-1, 1, 1)
    ball = direction * radius / k3.abs().clamp_min(1.0).sqrt()
    return torch.where(k3 < 0, ball, gm.expmap0(direction * radius, k=k3))


def _compare(
    device: str,
    *,
    batch: int = 1,
    n: int = 17,
    m: int = 17,
    d: int = 16,
    dv: int | None = None,
    dtype: torch.dtype = torch.float32,
    score: str = "distance",
    aggregation: str = "midpoint",
    padding: bool = False,
    causal: bool = False,
    fraction: float = 0.5,
    seed: int = 0,
    tol: tuple[float, float] | None = None,
    curvatures: tuple[float, float, float] = CURVATURES,
    keys_are_queries: bool = False,
) -> None:
    """Triton in ``dtype`` against the float64 reference on the same rounded inputs: the output and the
    gradients of ``sum(w * out)`` for q, k, v, the curvature, beta and gamma (the last one 0).
    ``keys_are_queries``: ``k`` has the values of ``q`` (distance 0 on the diagonal; needs ``m == n``)."""
    gen = torch.Generator().manual_seed(seed)
    kappa = torch.tensor(curvatures, dtype=torch.float64)
    heads = kappa.numel()
    q = _points((batch, heads, n, d), kappa, gen, fraction)
    k = q.clone() if keys_are_queries else _points((batch, heads, m, d), kappa, gen, fraction)
    v = _points((batch, heads, m, dv or d), kappa, gen, fraction)
    beta = torch.tensor([0.7, 1.1, 0.4], dtype=torch.float64) * (4.0 if score == "distance" else 1.0)
    gamma = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    pad = None
    if padding:
        pad = torch.rand(batch, m, generator=gen) < 0.3
        pad[:, 0] = False
    inputs = [t.to(dtype).to(device).requires_grad_() for t in (q, k, v)]
    inputs += [t.float().to(device).requires_grad_() for t in (kappa, beta, gamma)]
    kwargs: dict[str, Any] = {"score": score, "aggregation": aggregation, "causal": causal}
    out, attn = manifold_attention(
        *inputs[:3],
        curvature=inputs[3],
        beta=inputs[4],
        gamma=inputs[5],
        key_padding_mask=None if pad is None else pad.to(device),
        backend="triton",
        **kwargs,
    )
    assert attn is None and out.dtype == dtype and out.device.type == device
    ref_inputs = [t.detach().cpu().double().requires_grad_() for t in inputs]
    ref, _ = manifold_attention_reference(
        *ref_inputs[:3],
        curvature=ref_inputs[3],
        beta=ref_inputs[4],
        gamma=ref_inputs[5],
        key_padding_mask=pad,
        **kwargs,
    )
    rtol, grad_rtol = tol or TOL[dtype]

    def close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
        assert torch.isfinite(actual).all(), f"{what}: non-finite entries"
        scale = expected.abs().max().item() + 1e-30
        torch.testing.assert_close(
            actual.detach().cpu().double(), expected, rtol=tol, atol=tol * scale, msg=lambda s: f"{what}: {s}"
        )

    close(out, ref, rtol, "output")
    w = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad((out * w.to(dtype).to(device)).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * w).sum(), ref_inputs)
    names = ("q", "k", "v", "curvature", "beta")
    for name, g, gr, x in zip(names, grads, ref_grads, inputs, strict=False):
        assert g.dtype == x.dtype and g.shape == x.shape
        close(g, gr, grad_rtol, f"grad {name}")
    assert (grads[5] == 0).all() and ref_grads[5].abs().max() < 1e-12  # gamma cancels


CASES: dict[str, dict[str, Any]] = {
    "distance-midpoint": {},
    "distance-midpoint padded causal D=40": {"d": 40, "m": 19, "padding": True, "causal": True},
    "distance-tangent N=1": {"n": 1, "aggregation": "tangent"},
    "distance-tangent causal": {"aggregation": "tangent", "causal": True, "dv": 40},
    "tangent_dot-midpoint padded": {"score": "tangent_dot", "padding": True, "batch": 2, "n": 9},
    "tangent_dot-tangent causal": {"score": "tangent_dot", "aggregation": "tangent", "causal": True},
    "distance-midpoint N=63": {"n": 63, "m": 33},
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_float32_matches_reference(device: str, case: str) -> None:
    _compare(device, seed=len(case), **CASES[case])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_half_precision_matches_reference(device: str, dtype: torch.dtype) -> None:
    _compare(device, dtype=dtype, padding=True, seed=3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_points_near_the_ball_boundary(device: str, dtype: torch.dtype) -> None:
    """Norms up to 0.99 of the radius: large distances, lambda ~ 100 in the midpoint sums."""
    tol = (1e-4, 1e-3) if dtype == torch.float32 else None
    _compare(device, dtype=dtype, fraction=0.99, seed=4, tol=tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "curvatures",
    [(-0.3, -1e-3, 2e-3), (-0.6, -1e-6, 1e-6)],
    ids=["small", "tiny"],
)
def test_curvatures_near_zero(device: str, curvatures: tuple[float, float, float]) -> None:
    """Heads with 0 < |k| < K_EXACT take the series of arcosh^2 in the forward, and every head the series of
    the backward's Phi and d(d^2)/dk; values and every gradient (curvature included) stay accurate as k -> 0."""
    _compare(device, curvatures=curvatures, padding=True, causal=True, n=21, m=21, seed=11)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_keys_equal_to_queries(device: str, dtype: torch.dtype) -> None:
    """Self-attention over the same points: distance 0 on the diagonal (z = 0, where theta / sinh(theta) and
    the curvature derivative are 0/0 in closed form), with gradients for every input."""
    _compare(device, dtype=dtype, n=19, m=19, keys_are_queries=True, seed=12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("n", "m"), [(40, 40), (33, 50), (50, 20)], ids=["square", "wide", "tall"])
def test_causal_tiles_at_awkward_sizes(device: str, n: int, m: int) -> None:
    """Causal masks over several 16-wide tiles (below, across and above the diagonal, and key blocks past the
    last query): the unmasked and masked tile loops of both backward kernels split at the right tile."""
    _compare(device, n=n, m=m, causal=True, seed=n + m)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_without_curvature_gradient(device: str) -> None:
    """A fixed curvature skips the kernel's curvature sums; the other gradients are unchanged (up to float32
    rounding: compiled, the two variants schedule their fused multiply-adds differently; 2e-9 apart on an H200)."""
    gen = torch.Generator().manual_seed(13)
    kappa = torch.tensor(CURVATURES, dtype=torch.float64)
    q, k, v = (_points((1, 3, 18, 16), kappa, gen).float().to(device) for _ in range(3))
    grads = []
    for learn in (True, False):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        kap = kappa.float().to(device).requires_grad_(learn)
        out, _ = manifold_attention(*leaves, curvature=kap, beta=2.0, gamma=0.0, backend="triton")
        grads.append(torch.autograd.grad(out.square().sum(), leaves))
    for with_kappa, without in zip(*grads, strict=True):
        torch.testing.assert_close(with_kappa, without, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("aggregation", ["midpoint", "tangent"])
def test_fully_masked_rows_give_the_origin(device: str, dtype: torch.dtype, aggregation: str) -> None:
    """Batch element 0 has only padding keys (every row empty); causal masking leaves no other row empty.
    Outputs are 0 and gradients finite (float16: the empty rows' huge finishing-step gradients must not reach
    the half-precision operands of tl.dot) and 0 for the empty batch element."""
    gen = torch.Generator().manual_seed(5)
    kappa = torch.tensor(CURVATURES, dtype=torch.float64)
    q, k, v = (_points((2, 3, 5, 16), kappa, gen).to(dtype).to(device).requires_grad_() for _ in range(3))
    pad = torch.zeros(2, 5, dtype=torch.bool, device=device)
    pad[0] = True
    kap = kappa.float().to(device).requires_grad_()
    out, _ = manifold_attention(
        q, k, v, curvature=kap, beta=1.0, gamma=0.0, aggregation=aggregation,  # type: ignore[arg-type]
        key_padding_mask=pad, causal=True, backend="triton",
    )  # fmt: skip
    assert (out[0] == 0).all() and (out[1].abs().sum(-1) > 0).all()
    grads = torch.autograd.grad(out.float().sum(), (q, k, v, kap))
    assert all(torch.isfinite(g).all() for g in grads)
    assert (grads[0][0] == 0).all() and (grads[1][0] == 0).all() and (grads[2][0] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_inputs_changed_in_place_before_backward_are_detected(device: str) -> None:
    """The backward recomputes from the saved inputs, so autograd must refuse if one was modified."""
    q, k, v = (t.requires_grad_() for t in _small(torch.float32, device))
    qq = q * 1.0
    out, _ = manifold_attention(qq, k, v, curvature=-1.0, beta=1.0, gamma=0.0, backend="triton")
    qq.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.parametrize("device", DEVICES)
def test_empty_query_and_key_sets(device: str) -> None:
    """N = 0 gives an empty output; M = 0 gives the origin for every query (every row is empty)."""
    q = torch.zeros(1, 2, 0, 16, device=device, requires_grad=True)
    kv = torch.rand(1, 2, 3, 16, device=device, requires_grad=True)
    out, _ = manifold_attention(q, kv, kv, curvature=-1.0, beta=1.0, gamma=0.0, backend="triton")
    assert out.shape == (1, 2, 0, 16)
    q2 = torch.rand(1, 2, 3, 16, device=device) * 0.1
    none = torch.zeros(1, 2, 0, 16, device=device)
    out2, _ = manifold_attention(q2, none, none, curvature=-1.0, beta=1.0, gamma=0.0, backend="triton")
    assert (out2 == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_cat_module_runs_the_kernel_unchanged(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CurvatureAdaptiveAttention with backend="triton" equals its torch-backend twin, forward and backward,
    and the kernel is what ran."""
    calls = []
    real = ma_kernel.manifold_attention_triton

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ma_kernel, "manifold_attention_triton", spy)
    torch.manual_seed(0)
    cat = CurvatureAdaptiveAttention(16, 2, backend="triton").to(device)
    twin = CurvatureAdaptiveAttention(16, 2, backend="torch").to(device)
    twin.load_state_dict(cat.state_dict())
    x = torch.randn(2, 7, 16, device=device)
    pad = torch.zeros(2, 7, dtype=torch.bool, device=device)
    pad[1, 5:] = True
    y, y_ref = cat(x, pad, is_causal=True), twin(x, pad, is_causal=True)
    assert calls
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for (name, p), p_ref in zip(cat.named_parameters(), twin.parameters(), strict=True):
        assert p.grad is not None and p_ref.grad is not None, name
        # both sides are float32: relative to the largest entry (gamma: 0 against rounding noise)
        scale = p_ref.grad.abs().max().item() + 1e-2
        torch.testing.assert_close(
            p.grad, p_ref.grad, rtol=1e-3, atol=1e-4 * scale, msg=lambda s, n=name: f"{n}: {s}"
        )


# ---------------------------------------------------------------------------------------------------------
# One-pass CAT: three geometries over shared tangent heads
# ---------------------------------------------------------------------------------------------------------


def _cat_inputs(device: str, dtype: torch.dtype, n: int = 17, m: int = 19, d: int = 16) -> dict[str, Any]:
    """Tangent heads small enough that ``project`` clamps nothing (its margin depends on the dtype)."""
    gen = torch.Generator().manual_seed(7)
    heads = 2
    q, k, v = (torch.randn(2, heads, size, d, generator=gen, dtype=torch.float64) * 0.2 for size in (n, m, m))
    pad = torch.zeros(2, m, dtype=torch.bool)
    pad[1, m // 2 :] = True
    return {
        "q": q.to(dtype).to(device),
        "k": k.to(dtype).to(device),
        "v": v.to(dtype).to(device),
        "curvature": torch.tensor([0.0, 0.0, -1.0, -0.4, 1.0, 2.0], device=device),
        "beta": (torch.rand(6, generator=gen) + 0.5).to(device),
        "gamma": torch.randn(6, generator=gen).to(device),
        "alpha": torch.softmax(torch.randn(2, n, 3, generator=gen), -1).to(device),
        "key_padding_mask": pad.to(device),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("causal", [False, True])
def test_one_pass_cat_matches_reference(
    device: str, dtype: torch.dtype, causal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one_pass=True and no autograd the one-pass kernel runs (and only it: the per-branch kernel must not
    be called)."""

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the per-branch kernel was called")

    monkeypatch.setattr(ma_kernel, "manifold_attention_triton", boom)
    inputs = _cat_inputs(device, dtype)
    with torch.no_grad():
        out = cat_attention(**inputs, causal=causal, one_pass=True, backend="triton")
    ref = cat_attention_reference(
        **{n: t.cpu().double() for n, t in inputs.items() if n != "key_padding_mask"},
        key_padding_mask=inputs["key_padding_mask"].cpu(),
        causal=causal,
    )
    assert out.dtype == dtype and out.shape == ref.shape
    rtol = TOL[dtype][0] * 5
    torch.testing.assert_close(out.cpu().double(), ref, rtol=rtol, atol=rtol * ref.abs().max().item())


@pytest.mark.parametrize("device", DEVICES)
def test_cat_with_gradients_falls_back_to_the_branch_kernel(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With autograd the branches run as one fused call over 3H heads and the gradients match the reference."""

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the one-pass kernel was called")

    monkeypatch.setattr(ma_kernel, "cat_attention_triton", boom)
    inputs = _cat_inputs(device, torch.float32, n=9, m=9)
    inputs["q"].requires_grad_()
    out = cat_attention(**inputs, backend="triton")
    (grad,) = torch.autograd.grad(out.square().sum(), inputs["q"])
    ref_inputs = {n: t.detach().cpu().double() for n, t in inputs.items() if n != "key_padding_mask"}
    ref_inputs["q"].requires_grad_()
    ref = cat_attention_reference(**ref_inputs, key_padding_mask=inputs["key_padding_mask"].cpu())
    (grad_ref,) = torch.autograd.grad(ref.square().sum(), ref_inputs["q"])
    torch.testing.assert_close(out.detach().cpu().double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        grad.cpu().double(), grad_ref, rtol=2e-4, atol=2e-4 * grad_ref.abs().max().item()
    )


def test_cat_attention_names_bad_arguments() -> None:
    inputs = _cat_inputs("cpu", torch.float32)
    with pytest.raises(ValueError, match="alpha must have shape"):
        cat_attention(**(inputs | {"alpha": inputs["alpha"][:, :3]}))
    with pytest.raises(ValueError, match="beta must be a tensor of G\\*H = 6"):
        cat_attention(**(inputs | {"beta": inputs["beta"][:4]}))


# ---------------------------------------------------------------------------------------------------------
# Dispatch: what runs the reference instead of the kernel
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the Triton path is taken."""

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the Triton kernel was called")

    monkeypatch.setattr(ma_kernel, "manifold_attention_triton", boom)
    yield


def _small(dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(6)
    kappa = torch.tensor(CURVATURES, dtype=torch.float64)
    return tuple(_points((2, 3, 4, 5), kappa, gen).to(dtype).to(device) for _ in range(3))


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"attn_mask": torch.eye(4, dtype=torch.bool)},
        {"dropout_p": 0.1},
        {"need_weights": True},
        {"dtype": torch.float64},
    ],
    ids=["attn_mask", "dropout", "need_weights", "float64"],
)
def test_unsupported_calls_run_the_reference(device: str, kwargs: dict[str, Any]) -> None:
    dtype = kwargs.pop("dtype", torch.float32)
    q, k, v = _small(dtype, device)
    extra = {n: (t.to(device) if isinstance(t, torch.Tensor) else t) for n, t in kwargs.items()}
    torch.manual_seed(0)
    out, _ = manifold_attention(q, k, v, curvature=-1.0, beta=1.0, gamma=0.0, backend="triton", **extra)
    torch.manual_seed(0)
    ref, _ = manifold_attention_reference(q, k, v, curvature=-1.0, beta=1.0, gamma=0.0, **extra)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.usefixtures("no_kernel")
def test_cpu_tensors_use_the_reference_with_auto_and_torch() -> None:
    q, k, v = _small()
    ref, _ = manifold_attention_reference(q, k, v, curvature=0.5, beta=1.0, gamma=0.0)
    backends: tuple[Backend, ...] = ("auto", "torch")
    for backend in backends:
        out, _ = manifold_attention(q, k, v, curvature=0.5, beta=1.0, gamma=0.0, backend=backend)
        torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_triton_without_cuda_or_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, k, v = _small()
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        manifold_attention(q, k, v, curvature=-1.0, beta=1.0, gamma=0.0, backend="triton")


def test_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/manifold_attention.py --smoke runs every implementation, prints and writes its table."""
    bench = load_script(BENCHMARKS / "manifold_attention.py", "bench_manifold_attention")
    out = tmp_path / "manifold_attention.md"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| 24 ")]
    assert len(rows) == 3, printed  # forward, forward+backward, one-pass CAT at N = 24
    for row in rows:  # the last column is the kernel's error against float64
        error = float(row.strip(" |").split("|")[-1])
        assert math.isfinite(error) and error < 1e-4, row
    report = out.read_text()
    assert "| 24 " in report and "seed: 0" in report and "floor" in report


# ---------------------------------------------------------------------------------------------------------
# GPU only: compiled kernels at sizes with many tiles, every dtype, autotuned configs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(
    "dtype,d,score,aggregation",
    [
        (torch.bfloat16, 64, "distance", "midpoint"),
        (torch.float16, 128, "distance", "midpoint"),
        (torch.float32, 64, "tangent_dot", "tangent"),
    ],
    ids=["bfloat16-D64", "float16-D128", "float32-D64-tangent"],
)
def test_gpu_many_tiles(dtype: torch.dtype, d: int, score: str, aggregation: str) -> None:
    """Many tiles per row and column (N = 300, M = 517), padding, every dtype (each variant is a separate
    compilation of three kernels, so the list is short)."""
    _compare(
        "cuda", batch=2, n=300, m=517, d=d, dtype=dtype, score=score, aggregation=aggregation,
        padding=True, seed=d,
    )  # fmt: skip


@pytest.mark.gpu
def test_gpu_autotuned_causal_bfloat16() -> None:
    """Large enough (B*H*N*M >= 2^24) for the autotuned forward configs."""
    _compare("cuda", batch=2, n=1500, m=1500, d=64, dtype=torch.bfloat16, causal=True, seed=9)


@pytest.mark.parametrize("device", DEVICES)
def test_cat_without_one_pass_runs_the_branch_kernel(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default (one_pass=False, measured faster on an H200) never calls the one-pass kernel."""

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the one-pass kernel was called")

    monkeypatch.setattr(ma_kernel, "cat_attention_triton", boom)
    inputs = _cat_inputs(device, torch.float32, n=9, m=9)
    with torch.no_grad():
        out = cat_attention(**inputs, backend="triton")
    ref = cat_attention_reference(
        **{n: t.cpu().double() for n, t in inputs.items() if n != "key_padding_mask"},
        key_padding_mask=inputs["key_padding_mask"].cpu(),
    )
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-5, atol=1e-6)
