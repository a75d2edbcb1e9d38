"""The distance log-sum-exp: the reference against a direct float64 formula and ``gradcheck``, the Triton kernels
against the reference (values and every gradient) at awkward sizes, and clear errors.

Without CUDA the kernels run on CPU tensors through Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``; tiles of 16), so sizes are tiny: B, N below, at and above one tile, d not a power of
two. The reference is evaluated in float64 on the same (rounded) inputs; every buffer the kernels must write in
full is poisoned with NaN first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from geoattn.kernels import distance_logsumexp as dl_pkg
from geoattn.kernels.distance_logsumexp import (
    distance_logsumexp,
    distance_logsumexp_reference,
    distance_scores_reference,
)
from geoattn.kernels.distance_logsumexp import kernel as dl_kernel

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(autouse=True)
def poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every buffer the kernels must write in full starts as NaN, so an unwritten element fails."""

    def nan_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(dl_kernel, "_empty", nan_empty)


@pytest.fixture
def no_kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the Triton path is taken."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the Triton kernel was called")

    monkeypatch.setattr(dl_kernel, "distance_logsumexp_triton", boom)
    yield


def _inputs(
    b: int, n: int, d: int, seed: int, *, gamma: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Seeded float64 ``q [b, d]``, ``t [n, d]`` (scores spread over a few units) and ``gamma [n]``."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, d, generator=gen, dtype=torch.float64) * 0.6
    t = torch.randn(n, d, generator=gen, dtype=torch.float64) * 0.6
    g = torch.randn(n, generator=gen, dtype=torch.float64) if gamma else None
    return q, t, g


def _compare(
    q64: torch.Tensor,
    t64: torch.Tensor,
    g64: torch.Tensor | None,
    *,
    squared: bool,
    dtype: torch.dtype = torch.float32,
    tol: float = 1e-5,
    grad_tol: float = 2e-5,
    seed: int = 0,
    float32_floor: bool = False,
) -> None:
    """Triton in ``dtype`` against the float64 reference on the same rounded inputs: both outputs and the
    gradients of ``sum(w1 * lse + w2 * rowsum)``, tolerances relative to each tensor's largest entry.

    ``float32_floor``: an element may also be off by up to twice the float32 reference's largest error. The
    Gram form's cancellation makes the ``p = 1`` gradient of near-coincident pairs ill-conditioned in float32
    (module docstring of ``geoattn.kg.scoring``); the kernel must then be as accurate as the torch float32 path,
    not more."""
    ins = [x.to(dtype).to(DEVICE).requires_grad_() for x in (q64, t64, g64) if x is not None]
    gen = torch.Generator().manual_seed(seed)
    w1, w2 = (torch.randn(ins[0].shape[0], generator=gen, dtype=torch.float64).to(DEVICE) for _ in range(2))

    def outputs_and_grads(backend: str | None, dtype_of_refs: torch.dtype) -> list[torch.Tensor]:
        xs = ins if backend else [x.detach().to(dtype_of_refs).requires_grad_() for x in ins]
        g = xs[2] if g64 is not None else None
        if backend:
            lse, rowsum = distance_logsumexp(xs[0], xs[1], g, squared=squared, backend=backend)
            assert lse.dtype == rowsum.dtype == torch.float32 and lse.device.type == DEVICE.type
        else:
            lse, rowsum = distance_logsumexp_reference(xs[0], xs[1], g, squared=squared)
        weighted = (lse * w1.to(lse.dtype) + rowsum * w2.to(lse.dtype)).sum()
        return [lse, rowsum, *torch.autograd.grad(weighted, xs)]

    got = outputs_and_grads("triton", dtype)
    expected = outputs_and_grads(None, torch.float64)
    floors = outputs_and_grads(None, torch.float32) if float32_floor else [None] * len(got)
    names = ["lse", "rowsum", "grad q", "grad t", "grad gamma"]
    for i, (name, actual, want, ref32) in enumerate(zip(names, got, expected, floors, strict=False)):
        rtol = tol if i < 2 else grad_tol
        assert actual.shape == want.shape, name
        assert torch.isfinite(actual).all(), f"{name}: non-finite entries"
        if i >= 2:
            assert actual.dtype == dtype, name
        allowed = rtol * (want.abs().max().item() + 1e-30) + rtol * want.abs()
        if ref32 is not None:
            allowed = allowed.clamp_min(2.0 * (ref32.double() - want).abs().max().item())
        error = (actual.double() - want).abs()
        worst = int((error - allowed).argmax())
        assert (error <= allowed).all(), (
            f"{name}: {int((error > allowed).sum())} of {error.numel()} elements off; worst at flat index "
            f"{worst}: {actual.reshape(-1)[worst].item()} vs {want.reshape(-1)[worst].item()} "
            f"(allowed {allowed.reshape(-1)[worst].item():.3g})"
        )


# ---------------------------------------------------------------------------------------------------------
# The reference: the formula it specifies, gradcheck
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("squared", [False, True])
def test_reference_is_the_direct_formula(squared: bool) -> None:
    q, t, g = _inputs(4, 9, 3, seed=1)
    dist = (q[:, None, :] - t[None, :, :]).norm(dim=-1)
    scores = (dist.square() if squared else dist) * -1 + g
    torch.testing.assert_close(distance_scores_reference(q, t, g, squared=squared), scores)
    lse, rowsum = distance_logsumexp_reference(q, t, g, squared=squared)
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1))
    torch.testing.assert_close(rowsum, scores.sum(-1))


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("with_gamma", [False, True])
def test_reference_gradcheck(squared: bool, with_gamma: bool) -> None:
    q, t, g = _inputs(3, 5, 2, seed=2, gamma=with_gamma)
    ins = tuple(x.requires_grad_() for x in (q, t, g) if x is not None)

    def f(*xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return distance_logsumexp_reference(xs[0], xs[1], xs[2] if with_gamma else None, squared=squared)

    assert torch.autograd.gradcheck(f, ins)


# ---------------------------------------------------------------------------------------------------------
# The Triton kernels against the reference (the interpreter on CPU)
# ---------------------------------------------------------------------------------------------------------

# (B, N, d, squared, gamma): one row / one column, below and above a 16-tile, d = 2 and one not a power of 2
CASES = [
    (1, 1, 2, False, True),
    (1, 17, 16, True, False),
    (5, 70, 2, True, True),
    (5, 17, 40, False, False),
    (33, 17, 16, False, True),
    (33, 70, 40, True, True),
    (16, 16, 16, False, True),
]


@pytest.mark.parametrize(("b", "n", "d", "squared", "gamma"), CASES, ids=[str(c) for c in CASES])
def test_triton_matches_reference(b: int, n: int, d: int, squared: bool, gamma: bool) -> None:
    q, t, g = _inputs(b, n, d, seed=b * 1000 + n + d, gamma=gamma)
    _compare(q, t, g, squared=squared)


def test_triton_far_scores_stay_finite() -> None:
    """Scores of -1e3 and spread over hundreds: the online log-sum-exp neither under- nor overflows."""
    q, t, g = _inputs(5, 33, 5, seed=3)
    _compare(q * 8.0 + 10.0, t * 8.0, g * 50.0, squared=True, tol=1e-5, grad_tol=5e-5)


def test_triton_coincident_points_p1_have_a_zero_subgradient() -> None:
    """Dyadic coordinates make the Gram cancellation exact: q_b = t_j gives distance 0, whose gradient is defined
    as 0 (the reference's guarded sqrt), so every gradient is finite and equals the reference's."""
    t = torch.tensor(
        [[0.5, -0.25, 0.125], [0.25, 0.0, -0.5], [-0.125, 0.375, 0.25], [0.75, 0.5, -0.25]],
        dtype=torch.float64,
    )
    q = t[[0, 2, 2]].clone()  # rows 1 and 2 coincide with the same column
    g = torch.tensor([0.5, -1.0, 0.25, 0.0], dtype=torch.float64)
    _compare(q, t, g, squared=False)
    qq = q.float().to(DEVICE).requires_grad_()
    tt = t.float().to(DEVICE).requires_grad_()
    lse, _ = distance_logsumexp(qq, tt, squared=False, backend="triton")
    assert all(torch.isfinite(gr).all() for gr in torch.autograd.grad(lse.sum(), [qq, tt]))
    # the reference's subgradient at q_b = t_j is 0: q_0 = t_0 and nothing else contributes to its gradient
    q1 = t[:1].clone().requires_grad_()
    (grad,) = torch.autograd.grad(distance_logsumexp_reference(q1, t[:1], squared=False)[0].sum(), q1)
    assert (grad == 0).all()


def test_triton_non_contiguous_inputs() -> None:
    """Strided views (``q`` a transposed ``[d, B]``, ``t`` every other row): gradients come back in their shapes."""
    q64, t64, g64 = _inputs(7, 42, 5, seed=14)
    assert g64 is not None
    q = q64.float().T.contiguous().requires_grad_()  # [d, B]
    t = t64.float().requires_grad_()
    lse, rowsum = distance_logsumexp(q.T, t[::2], g64.float()[::2], squared=False, backend="triton")
    ref = distance_logsumexp_reference(q64, t64[::2], g64[::2], squared=False)
    torch.testing.assert_close(lse.double(), ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rowsum.double(), ref[1], rtol=1e-5, atol=1e-5)
    grad_q, grad_t = torch.autograd.grad((lse + rowsum).sum(), [q, t])
    qr, tr = q64.clone().requires_grad_(), t64.clone().requires_grad_()
    ref_q, ref_t = torch.autograd.grad(
        sum(x.sum() for x in distance_logsumexp_reference(qr, tr[::2], g64[::2], squared=False)), [qr, tr]
    )
    torch.testing.assert_close(grad_q.double(), ref_q.T, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(grad_t.double(), ref_t, rtol=2e-5, atol=2e-5)
    assert (grad_t[1::2] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_precision_inputs(dtype: torch.dtype) -> None:
    """Computed in float32 from half-precision inputs (outputs float32, gradients rounded to ``dtype``)."""
    q, t, g = _inputs(19, 21, 24, seed=4)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    _compare(q, t, g, squared=False, dtype=dtype, tol=1e-5, grad_tol=tol)


@pytest.mark.parametrize("needs", ["q", "t", "gamma"])
def test_triton_gradients_of_a_subset_of_inputs(needs: str) -> None:
    q64, t64, g64 = _inputs(6, 18, 5, seed=6)
    assert g64 is not None
    q, t, g = (x.float().to(DEVICE).requires_grad_(needs == name) for name, x in zip(("q", "t", "gamma"), (q64, t64, g64), strict=True))  # fmt: skip
    lse, rowsum = distance_logsumexp(q, t, g, squared=True, backend="triton")
    refs = [x.detach().double().requires_grad_(needs == name) for name, x in zip(("q", "t", "gamma"), (q, t, g), strict=True)]  # fmt: skip
    ref_lse, ref_rowsum = distance_logsumexp_reference(*refs, squared=True)
    target = {"q": q, "t": t, "gamma": g}[needs]
    (grad,) = torch.autograd.grad((lse + 0.3 * rowsum).sum(), target)
    (grad_ref,) = torch.autograd.grad(
        (ref_lse + 0.3 * ref_rowsum).sum(), refs[("q", "t", "gamma").index(needs)]
    )
    torch.testing.assert_close(grad.double(), grad_ref, rtol=2e-5, atol=2e-5)


def test_triton_empty_inputs() -> None:
    q, t, g = (x.float().to(DEVICE) for x in _inputs(3, 4, 5, seed=7) if x is not None)
    lse, rowsum = distance_logsumexp(q, t[:0], g[:0], squared=True, backend="triton")
    assert (lse == float("-inf")).all() and (rowsum == 0).all()
    lse, rowsum = distance_logsumexp(q[:0], t, g, squared=True, backend="triton")
    assert lse.shape == rowsum.shape == (0,)
    qq, tt, gg = (x.clone().requires_grad_() for x in (q[:0], t, g))
    lse, rowsum = distance_logsumexp(qq, tt, gg, squared=False, backend="triton")
    grads = torch.autograd.grad((lse.sum() + rowsum.sum()), [qq, tt, gg], allow_unused=True)
    assert all(gr is None or (gr == 0).all() for gr in grads)


# ---------------------------------------------------------------------------------------------------------
# Dispatch and errors
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_kernel")
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_cpu_auto_and_torch_use_the_reference(backend: str) -> None:
    q, t, g = (x.float() for x in _inputs(3, 4, 5, seed=8) if x is not None)
    out = distance_logsumexp(q, t, g, squared=False, backend=backend)
    ref = distance_logsumexp_reference(q, t, g, squared=False)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.usefixtures("no_kernel")
def test_float64_uses_the_reference_even_with_triton() -> None:
    q, t, g = (x.to(DEVICE) for x in _inputs(3, 4, 5, seed=9) if x is not None)
    lse, rowsum = distance_logsumexp(q, t, g, squared=True, backend="triton")
    assert lse.dtype == rowsum.dtype == torch.float64


def test_triton_without_cuda_or_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, t, _ = _inputs(2, 3, 4, seed=10)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        distance_logsumexp(q.float(), t.float(), squared=True, backend="triton")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"q": torch.zeros(3)}, ValueError, "q must be a 2-D tensor"),
        ({"t": torch.zeros(4, 5)}, ValueError, "need the same d"),
        ({"q": torch.zeros(2, 300), "t": torch.zeros(4, 300)}, ValueError, r"same d in \[1, 256\]"),
        ({"gamma": torch.zeros(3)}, ValueError, r"gamma must be None or a tensor \[N\] = \[4\]"),
        ({"t": torch.zeros(4, 3, dtype=torch.float64)}, ValueError, "share a dtype"),
        ({"q": torch.zeros(2, 3, dtype=torch.int64)}, ValueError, "q must have a dtype of"),
        ({"squared": 1}, TypeError, "squared must be a bool"),
        ({"t": torch.zeros(4, 3, device="meta")}, ValueError, "must be on the same device"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"q": torch.zeros(2, 3), "t": torch.zeros(4, 3), "squared": True} | kwargs
    with pytest.raises(error, match=match):
        distance_logsumexp(**args)


def test_public_surface() -> None:
    assert dl_pkg.distance_logsumexp_reference is distance_logsumexp_reference
    assert set(dl_pkg.__all__) >= {"distance_logsumexp", "distance_logsumexp_reference", "TRITON_IMPLEMENTED"}
    assert dl_pkg.TRITON_IMPLEMENTED


# ---------------------------------------------------------------------------------------------------------
# GPU: compiled kernels, autotuned configs, the WN18RR 1-N size (run on the GPU host with `pytest -m gpu`)
# ---------------------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: (1e-5, 5e-5), torch.bfloat16: (1e-5, 2e-2)}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(GPU_TOL))
@pytest.mark.parametrize("squared", [False, True])
def test_gpu_kg_size_matches_reference(dtype: torch.dtype, squared: bool) -> None:
    """B = 1024 queries against N = 40943 entities (WN18RR), d = 32, with tail biases."""
    q, t, g = _inputs(1024, 40943, 32, seed=11)
    tol, grad_tol = GPU_TOL[dtype]
    _compare(q, t, g, squared=squared, dtype=dtype, tol=tol, grad_tol=grad_tol)


@pytest.mark.gpu
@pytest.mark.parametrize("d", [2, 40, 256])
def test_gpu_awkward_sizes_match_reference(d: int) -> None:
    # At d = 2 some of the 345k pairs nearly coincide (first GPU run: 4 of 2,074 elements of grad t off by up to
    # 0.3% of its largest entry): the float32 floor applies, and is what the torch float32 path achieves.
    q, t, g = _inputs(333, 1037, d, seed=12)
    _compare(q, t, g, squared=False, tol=1e-5, grad_tol=5e-5, float32_floor=True)


@pytest.mark.gpu
def test_gpu_auto_picks_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = dl_kernel.distance_logsumexp_triton

    def spy(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dl_kernel, "distance_logsumexp_triton", spy)
    q, t, g = (x.float().cuda() for x in _inputs(3, 4, 5, seed=13) if x is not None)
    lse, _ = distance_logsumexp(q, t, g, squared=True)
    assert calls and lse.is_cuda
    with pytest.raises(ValueError, match="same device"):
        distance_logsumexp(q, t.cpu(), g, squared=True)


def test_auto_runs_the_kernel_once_verified_and_the_gate_holds_it_back_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from geoattn.environment import kernel_backend
    from geoattn.kernels import backend

    # Its `pytest -m gpu` tests passed on an H200 (stop 17), so it left UNVERIFIED_ON_GPU; the gate that kept
    # it on torch until then must still work for the next kernel.
    assert "distance_logsumexp" not in backend.UNVERIFIED_ON_GPU
    assert kernel_backend("distance_logsumexp", cuda=True).startswith("triton")
    monkeypatch.setattr(backend, "UNVERIFIED_ON_GPU", frozenset({"distance_logsumexp"}))
    monkeypatch.setattr("geoattn.environment.UNVERIFIED_ON_GPU", backend.UNVERIFIED_ON_GPU)
    assert "not yet tested on a GPU" in kernel_backend("distance_logsumexp", cuda=True)
    cuda_like = [torch.empty(0)]
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(backend, "triton_available", lambda: True)
    assert backend.resolve_backend("auto", *cuda_like, op="distance_logsumexp") == "torch"
    assert backend.resolve_backend("auto", *cuda_like, op="pairwise_dist") == "triton"
