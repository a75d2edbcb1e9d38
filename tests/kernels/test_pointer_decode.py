"""The pointer-decoding Triton kernel (fused step and persistent) against its torch reference: identical tours.

Without CUDA the kernel runs on CPU tensors through Triton's interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1``), so instances and models are tiny; every test taking ``device`` also runs compiled on
the GPU host (``pytest -m gpu``), where the ``cpu`` variants are skipped (no interpreter there).

Both backends compute in float32 but sum in different orders, so "identical" is checked as: on the CPU the
tours are equal; on the GPU every row whose tour differs must first differ at a float32 near-tie of the
reference (two cities' compatibilities within 1e-5 relative, or a sampled uniform within 1e-5 of a CDF step),
which is what "the same tours for the same logits" allows.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest
import torch
from kernels_helpers import city_points

from geoattn.kernels import KERNELS, Backend
from geoattn.kernels import pointer_decode as pointer_decode_pkg
from geoattn.kernels.backend import UNVERIFIED_ON_GPU, triton_interpreting
from geoattn.kernels.pointer_decode import (
    PointerKeys,
    auto_prefers_torch,
    pointer_decode,
    pointer_decode_reference,
)
from geoattn.kernels.pointer_decode import kernel as pointer_kernel
from geoattn.kernels.pointer_decode.reference import compute_dtype, pointer_choice, pointer_compatibility
from geoattn.nn import TSPAttentionModel
from geoattn.solvers import DecodeResult, DecodeStrategy, decode_tours

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

DEVICES = [
    pytest.param(
        "cpu", marks=pytest.mark.skipif(not triton_interpreting(), reason="CPU runs need TRITON_INTERPRET=1")
    ),
    pytest.param("cuda", marks=pytest.mark.gpu),
]


def _model(dtype: torch.dtype = torch.float32, device: str = "cpu", **config: int) -> TSPAttentionModel:
    """A seeded untrained policy, tiny by default (``d = 16``, 2 heads of width 8: padded to 16 in the kernel)."""
    torch.manual_seed(0)
    config = {"embed_dim": 16, "heads": 2, "layers": 1, "ff_dim": 32} | config
    return TSPAttentionModel(**config).to(dtype=dtype, device=device).eval()  # type: ignore[arg-type]


def _inputs(
    model: TSPAttentionModel, coords: torch.Tensor, rows: int, seed: int
) -> tuple[PointerKeys, torch.Tensor, torch.Tensor]:
    """``(keys, fixed_queries [B, P, d], starts [B, P])`` of ``model`` on ``coords``, seeded random starts."""
    batch, n, _ = coords.shape
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(n, (batch, rows), generator=g).to(coords.device)
    with torch.no_grad():
        enc = model.encode(coords.to(next(model.parameters()).dtype))
        return model.pointer_keys(enc), model.fixed_query(enc, starts), starts


def _noise(starts: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*starts.shape, n - 1, generator=g).to(starts.device)


def _assert_same_tours(
    got: torch.Tensor,
    expected: torch.Tensor,
    keys: PointerKeys,
    fixed: torch.Tensor,
    *,
    clip: float,
    noise: torch.Tensor | None = None,
    coords: torch.Tensor | None = None,
) -> None:
    """``got`` and ``expected`` ``[B, P, n]`` are permutations from the same starts, and the same tours (module
    docstring); with ``coords``, tours count as the same when they visit the same points (duplicate cities are
    interchangeable)."""
    batch, rows, n = expected.shape
    arange = torch.arange(n, device=got.device).expand(batch, rows, n)
    assert torch.equal(got.sort(dim=-1).values, arange) and torch.equal(got[..., 0], expected[..., 0])
    if coords is None:
        differ = (got != expected).any(dim=-1)
    else:  # compare the points visited: the first city at each point stands for all of them
        first = (coords[:, :, None] == coords[:, None]).all(-1).int().argmax(-1)[:, None].expand(-1, rows, -1)
        differ = (first.gather(2, got) != first.gather(2, expected)).any(dim=-1)
    rows_differing = differ.nonzero().tolist()
    if got.device.type == "cpu":
        assert not rows_differing, f"rows {rows_differing} differ"
    assert len(rows_differing) <= max(1, batch * rows // 100), (
        f"{len(rows_differing)} of {batch * rows} differ"
    )
    dtype = compute_dtype(fixed.dtype)
    for b, p in rows_differing:
        t = int((got[b, p] != expected[b, p]).nonzero()[0])
        visited = torch.zeros(1, 1, n, dtype=torch.bool, device=got.device)
        visited[0, 0, expected[b, p, :t]] = True
        one = PointerKeys(*(k[b : b + 1].to(dtype) for k in keys))
        u = pointer_compatibility(
            one, fixed[b : b + 1, p : p + 1].to(dtype), expected[b, p, t - 1].view(1, 1), visited
        )
        a, e = int(got[b, p, t]), int(expected[b, p, t])
        if noise is None:
            assert (u[0, 0, a] - u[0, 0, e]).abs() <= 1e-5 * u.abs().max(), (b, p, t)
        else:
            uniform = noise[b, p, t - 1].view(1, 1).double()
            low, high = (
                int(pointer_choice(u, visited, clip=clip, embed_dim=fixed.shape[-1], noise=uniform + shift))
                for shift in (-1e-5, 1e-5)
            )
            assert low <= a <= high, (b, p, t)


def _check_backends(
    model: TSPAttentionModel,
    coords: torch.Tensor,
    rows: int,
    *,
    seed: int,
    sample: bool,
    persistent: bool = True,
    compare_points: bool = False,
) -> torch.Tensor:
    """The kernel's tours equal the reference's (:func:`_assert_same_tours`); returns them."""
    keys, fixed, starts = _inputs(model, coords, rows, seed)
    noise = _noise(starts, coords.shape[1], seed) if sample else None
    args: dict[str, Any] = {"clip": model.clip, "noise": noise}
    got = pointer_decode(keys, fixed, starts, persistent=persistent, backend="triton", **args)
    expected = pointer_decode(keys, fixed, starts, backend="torch", **args)
    _assert_same_tours(got, expected, keys, fixed, coords=coords if compare_points else None, **args)
    return got


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "step"])
@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sample"])
@pytest.mark.parametrize("n,batch,rows", [(3, 2, 3), (5, 3, 5), (17, 2, 17)])
def test_same_tours_as_reference(
    device: str, persistent: bool, sample: bool, n: int, batch: int, rows: int
) -> None:
    """17 rows: two row blocks of 16; 17 cities: two node tiles on the GPU (16 + 1)."""
    model = _model(device=device)
    _check_backends(
        model,
        city_points(batch, n, seed=n, device=device),
        rows,
        seed=n,
        sample=sample,
        persistent=persistent,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sample"])
def test_n130_several_tiles(device: str, sample: bool) -> None:
    """More cities than one node tile (128 under the interpreter, 32 compiled), a tile boundary inside."""
    _check_backends(
        _model(device=device), city_points(1, 130, seed=130, device=device), 1 + sample, seed=3, sample=sample
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["duplicates", "collinear"])
def test_duplicates_and_collinear_points(device: str, kind: str) -> None:
    """Duplicate cities have equal embeddings, so their compatibilities tie exactly: the first index wins in
    both backends (compared as points, since duplicates are interchangeable)."""
    model = _model(device=device)
    coords = city_points(3, 14, seed=7, kind=kind, device=device)
    for sample in (False, True):
        _check_backends(model, coords, 4, seed=7, sample=sample, compare_points=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models(device: str, dtype: torch.dtype) -> None:
    """A bfloat16 / float16 policy: both backends read the same half-precision tensors and compute in float32."""
    model = _model(dtype, device=device, embed_dim=32, heads=4)
    keys, _, _ = _inputs(model, city_points(1, 4, seed=0, device=device), 1, seed=0)
    assert keys.logit_keys.dtype == dtype
    for sample in (False, True):
        _check_backends(model, city_points(2, 9, seed=9, device=device), 3, seed=9, sample=sample)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("strategy", ["greedy", "multistart", "sampling"])
def test_decode_tours_backends_agree(device: str, strategy: DecodeStrategy) -> None:
    """decode_tours: the same tours and lengths with either backend (sampling: the same generator seed)."""
    model = _model(device=device)
    coords = city_points(3, 8, seed=5, device=device)

    def decode(backend: Backend) -> DecodeResult:
        generator = torch.Generator(device=device).manual_seed(0)
        augment = strategy == "multistart"  # the 8 images are 8 instances to the decoder: once is enough
        return decode_tours(
            model,
            coords,
            strategy=strategy,
            augment=augment,
            num_samples=3,
            generator=generator,
            backend=backend,
        )

    got, expected = decode("triton"), decode("torch")
    assert torch.equal(got.tours, expected.tours) and torch.equal(got.lengths, expected.lengths)


def test_reference_is_the_models_decoder() -> None:
    """The reference (W_o folded into the logit keys, argmax on u) decodes the tours of the model's own
    rollout, and samples from its step distribution: the inverse CDF of ``exp(step_log_probs)``."""
    model = _model(torch.float64, embed_dim=32, heads=4)
    coords = city_points(4, 12, seed=1).double()
    keys, fixed, starts = _inputs(model, coords, 5, seed=1)
    with torch.no_grad():
        enc = model.encode(coords)
        tours, _ = model.rollout(enc, starts)
        assert torch.equal(pointer_decode(keys, fixed, starts, clip=model.clip), tours)
        last = starts[:, :1].expand(-1, 4000)  # one step, 4000 rows with their own uniforms
        visited = torch.zeros(4, 4000, 12, dtype=torch.bool).scatter(2, last[..., None], True)
        probs = model.step_log_probs(enc, model.fixed_query(enc, last), last, visited).exp()
        u = pointer_compatibility(keys, model.fixed_query(enc, last), last, visited)
    uniform = torch.rand(4, 4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chosen = pointer_choice(u, visited, clip=model.clip, embed_dim=32, noise=uniform)
    cdf = probs[:, 0].cumsum(dim=-1)
    assert torch.equal(chosen, torch.searchsorted(cdf, uniform, right=True).clamp(max=11))
    frequency = torch.nn.functional.one_hot(chosen, 12).double().mean(dim=1)
    assert (frequency - probs[:, 0]).abs().max() < 0.03
    # the extremes: U = 0 draws the first city of positive weight, U -> 1 the last unvisited city
    first, final = (
        pointer_choice(u[:, :1], visited[:, :1], clip=model.clip, embed_dim=32, noise=torch.full((4, 1), x))
        for x in (0.0, 1 - 1e-12)
    )
    open_ = (~visited[:, 0]).double()
    assert torch.equal(first[:, 0], open_.argmax(dim=-1)) and torch.equal(
        final[:, 0], 11 - open_.flip(-1).argmax(-1)
    )


@pytest.fixture
def kernel_spy(monkeypatch: pytest.MonkeyPatch) -> MagicMock:
    """Records the calls of the Triton path (which still runs)."""
    spy = MagicMock(wraps=pointer_kernel.pointer_decode_triton)
    monkeypatch.setattr(pointer_kernel, "pointer_decode_triton", spy)
    return spy


def test_float64_and_auto_use_the_reference(kernel_spy: MagicMock) -> None:
    keys, fixed, starts = _inputs(_model(), city_points(2, 6, seed=2), 2, seed=2)
    expected = pointer_decode_reference(keys, fixed, starts, clip=10.0)
    assert torch.equal(pointer_decode(keys, fixed, starts, clip=10.0), expected)  # auto: CPU tensors
    wide = PointerKeys(*(k.double() for k in keys))
    if triton_interpreting():
        wide_tours = pointer_decode(wide, fixed.double(), starts, clip=10.0, backend="triton")
        assert torch.equal(wide_tours, pointer_decode_reference(wide, fixed.double(), starts, clip=10.0))
    assert not kernel_spy.called
    if triton_interpreting():
        pointer_decode(keys, fixed, starts, clip=10.0, backend="triton")
        assert kernel_spy.call_count == 1


@pytest.mark.parametrize(
    "instances,starts,n,torch_wins",
    [
        (10_000, 1, 100, True),
        (1000, 8, 50, True),
        (1, 1, 1000, True),
        (999, 1, 999, False),
        (10_000, 16, 1000, False),
    ],
)
def test_auto_leaves_single_start_decoding_of_large_batches_to_torch(
    instances: int, starts: int, n: int, torch_wins: bool
) -> None:
    # the cells of the H200 decoding table where one start per instance ran slower in the kernel than in torch
    assert auto_prefers_torch(instances, starts, n=n) is torch_wins


def test_triton_without_cuda_or_interpreter_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    keys, fixed, starts = _inputs(_model(), city_points(1, 5, seed=0), 1, seed=0)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        pointer_decode(keys, fixed, starts, clip=10.0, backend="triton")


@pytest.mark.parametrize(
    "change,error,match",
    [
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"keys": tuple(range(4))}, TypeError, "keys must be a PointerKeys"),
        ({"keys.glimpse_keys": torch.zeros(2, 2, 8)}, ValueError, r"glimpse_keys must be \[B, H, d/H, n\]"),
        (
            {"keys.glimpse_values": torch.zeros(2, 2, 5, 8)},
            ValueError,
            r"glimpse_values must have shape \[2, 2, 6, 8\]",
        ),
        ({"keys.logit_keys": torch.zeros(2, 16, 7)}, ValueError, r"logit_keys must have shape \[2, 16, 6\]"),
        (
            {"keys.last_queries": torch.zeros(2, 6, 8)},
            ValueError,
            r"last_queries must have shape \[2, 6, 16\]",
        ),
        ({"fixed_queries": torch.zeros(2, 4, 16)}, ValueError, r"fixed_queries must have shape \[2, 3, 16\]"),
        ({"starts": torch.zeros(3, 3, dtype=torch.long)}, ValueError, r"starts must be \[B=2, P\]"),
        ({"starts": torch.zeros(2, 3)}, ValueError, "starts must be long"),
        (
            {"starts": torch.tensor([[0, 1, 6], [0, 0, 0]])},
            ValueError,
            r"starts must be cities 0..5, got values from 0 to 6",
        ),
        (
            {"fixed_queries": torch.zeros(2, 3, 16, dtype=torch.float64)},
            ValueError,
            "share one floating dtype",
        ),
        (
            {"noise": torch.rand(2, 3, 6)},
            ValueError,
            r"noise must be a floating \[B, P, n - 1\] = \[2, 3, 5\]",
        ),
        ({"noise": torch.rand(2, 3, 5, device="meta")}, ValueError, "must be on one device"),
        ({"clip": 0.0}, ValueError, "clip must be a finite number > 0, got 0.0"),
        ({"clip": float("inf")}, ValueError, "clip must be a finite number > 0"),
    ],
)
def test_invalid_arguments_are_named(change: dict[str, Any], error: type[Exception], match: str) -> None:
    """``change``: arguments replacing valid ones (``keys.<field>``: one tensor of the keys)."""
    keys, fixed, starts = _inputs(_model(), city_points(2, 6, seed=1), 3, seed=1)
    args: dict[str, Any] = {
        "keys": keys,
        "fixed_queries": fixed,
        "starts": starts,
        "clip": 10.0,
        "backend": "triton",
    }
    for name, value in change.items():
        if name.startswith("keys."):
            args["keys"] = keys._replace(**{name.removeprefix("keys."): value})
        else:
            args[name] = value
    with pytest.raises(error, match=match):
        pointer_decode(**args)


def test_decode_tours_rejects_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="pointer_decode: backend must be one of"):
        decode_tours(_model(), city_points(1, 4, seed=0), backend="cuda")  # type: ignore[arg-type]


def test_public_surface() -> None:
    assert "pointer_decode" in KERNELS and pointer_decode_pkg.TRITON_IMPLEMENTED
    assert pointer_decode_pkg.pointer_decode_reference is pointer_decode_reference
    assert "pointer_decode" not in UNVERIFIED_ON_GPU  # its `pytest -m gpu` tests passed on an H200


# ---------------------------------------------------------------------------------------------------------
# GPU only: the shipped policy at benchmark sizes, what auto picks
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("n,batch,rows", [(50, 64, 50), (100, 32, 100), (200, 4, 16), (500, 2, 1)])
def test_gpu_shipped_policy_at_benchmark_sizes(n: int, batch: int, rows: int) -> None:
    """The shipped TSP100 policy, encoded under bfloat16 autocast as decode_tours does on CUDA."""
    from geoattn.solvers import load_pretrained

    model = load_pretrained(device="cuda")
    coords = city_points(batch, n, seed=n, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        keys, fixed, starts = _inputs(model, coords, rows, seed=n)
    for noise in (None, _noise(starts, n, seed=n)):
        for persistent in (True, False):
            got = pointer_decode(
                keys, fixed, starts, clip=model.clip, noise=noise, persistent=persistent, backend="triton"
            )
            expected = pointer_decode(keys, fixed, starts, clip=model.clip, noise=noise, backend="torch")
            _assert_same_tours(got, expected, keys, fixed, clip=model.clip, noise=noise)


@pytest.mark.gpu
def test_gpu_auto_runs_the_kernel_on_cuda(kernel_spy: MagicMock) -> None:
    model = _model(device="cuda")
    coords = city_points(2, 10, seed=4, device="cuda")
    assert decode_tours(model, coords, backend="torch").tours.is_cuda and not kernel_spy.called
    decode_tours(model, coords)
    assert kernel_spy.called


@pytest.mark.gpu
def test_gpu_auto_decodes_one_start_of_many_instances_with_torch(kernel_spy: MagicMock) -> None:
    keys, fixed, starts = _inputs(
        _model(device="cuda"), city_points(1000, 8, seed=5, device="cuda"), 1, seed=5
    )
    tours = pointer_decode(keys, fixed, starts, clip=10.0)
    assert not kernel_spy.called
    assert torch.equal(tours, pointer_decode(keys, fixed, starts, clip=10.0, backend="torch"))
