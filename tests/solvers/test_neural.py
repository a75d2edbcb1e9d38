"""decode_tours: valid tours with correct lengths, strategies ordered as they must be, seeded, chunked, n = 3."""

from __future__ import annotations

import math

import pytest
import torch

from geoattn.nn import TSPAttentionModel
from geoattn.solvers import decode_tours, symmetry_augment
from geoattn.solvers.neural import spread_starts
from geoattn.tasks import tour_length
from geoattn.train.tasks.tsp_policy import TSPPolicy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

STRATEGIES = ["greedy", "multistart", "sampling"]


def _model(seed: int = 0, dtype: torch.dtype = torch.float32) -> TSPAttentionModel:
    torch.manual_seed(seed)
    return TSPAttentionModel(embed_dim=16, heads=2, layers=1, ff_dim=32).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tours_are_permutations_with_their_lengths(strategy: str, augment: bool, dtype: torch.dtype) -> None:
    coords = torch.rand(4, 9, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)
    result = decode_tours(
        _model(dtype=dtype),
        coords,
        strategy=strategy,  # type: ignore[arg-type]
        augment=augment,
        num_samples=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.tours.shape == (4, 9) and result.tours.dtype == torch.long
    assert result.lengths.dtype == dtype
    # tour_length checks the permutations and recomputes the lengths independently
    torch.testing.assert_close(result.lengths, tour_length(coords, result.tours))


def test_multistart_and_augmentation_are_never_worse_than_greedy() -> None:
    model = _model(dtype=torch.float64)
    coords = torch.rand(16, 12, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    greedy = decode_tours(model, coords, strategy="greedy", augment=False).lengths
    greedy_aug = decode_tours(model, coords, strategy="greedy", augment=True).lengths
    multi = decode_tours(model, coords, strategy="multistart", augment=False).lengths
    multi_aug = decode_tours(model, coords, strategy="multistart", augment=True).lengths
    assert (greedy_aug <= greedy).all() and (multi <= greedy).all()
    assert (multi_aug <= multi).all() and (multi_aug <= greedy_aug).all()
    assert (multi_aug < greedy).any()  # the extra candidates do find shorter tours


def test_sampling_is_deterministic_for_a_seed() -> None:
    model = _model()
    coords = torch.rand(3, 15, 2, generator=torch.Generator().manual_seed(3))

    def sample(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return decode_tours(model, coords, strategy="sampling", num_samples=4, generator=generator).tours

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_three_cities(strategy: str) -> None:
    coords = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    result = decode_tours(_model(), coords, strategy=strategy, num_samples=2)  # type: ignore[arg-type]
    assert sorted(result.tours[0].tolist()) == [0, 1, 2]
    torch.testing.assert_close(result.lengths, torch.tensor([2.0 + math.sqrt(2.0)]))


def test_chunking_gives_the_same_tours() -> None:
    model = _model()
    coords = torch.rand(5, 10, 2, generator=torch.Generator().manual_seed(4))
    whole = decode_tours(model, coords, strategy="multistart", augment=True)
    # 2 * 10 = 20 entries per start and view: chunks of one view and of 3 starts
    chunked = decode_tours(model, coords, strategy="multistart", augment=True, max_elements=60)
    torch.testing.assert_close(chunked.lengths, whole.lengths)


def test_large_instance_in_chunks() -> None:
    model = _model()
    coords = torch.rand(1, 2000, 2, generator=torch.Generator().manual_seed(5))
    # 2 starts of 2 heads x 2000 cities = 8,000 entries: a bound of 5,000 decodes one start at a time
    result = decode_tours(
        model, coords, strategy="multistart", num_starts=2, augment=False, max_elements=5_000
    )
    torch.testing.assert_close(result.lengths, tour_length(coords, result.tours))


def test_symmetry_augment_gives_eight_isometric_images() -> None:
    coords = torch.rand(2, 6, 2, dtype=torch.float64)
    images = symmetry_augment(coords)
    assert images.shape == (8, 2, 6, 2)
    assert torch.equal(images[0], coords)
    assert len({tuple(img.flatten().tolist()) for img in images}) == 8
    for img in images:
        assert ((img >= 0) & (img <= 1)).all()
        torch.testing.assert_close(torch.cdist(img, img), torch.cdist(coords, coords))


def test_spread_starts() -> None:
    assert spread_starts(10, 1).tolist() == [0]
    assert spread_starts(10, 4).tolist() == [0, 3, 6, 9]
    assert spread_starts(5, 5).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("coords", "kwargs", "match"),
    [
        (torch.rand(4, 2), {}, r"coords must be a \[B, n, 2\] tensor, got \(4, 2\)"),
        (torch.zeros(1, 4, 2, dtype=torch.long), {}, "floating point"),
        (torch.rand(1, 2, 2), {}, "n >= 3 cities, got n=2"),
        (torch.tensor([[[0.0, 0.0], [math.nan, 1.0], [1.0, 1.0]]]), {}, "NaN or infinite"),
        (torch.rand(1, 4, 2), {"strategy": "beam"}, "strategy must be"),
        (torch.rand(1, 4, 2), {"num_starts": 5}, "num_starts must be <= n=4, got 5"),
        (torch.rand(1, 4, 2), {"num_starts": 0}, "num_starts must be an int >= 1"),
        (torch.rand(1, 4, 2), {"strategy": "sampling", "num_samples": 0}, "num_samples must be an int >= 1"),
        (torch.rand(1, 4, 2), {"max_elements": 0}, "max_elements must be an int >= 1"),
    ],
)
def test_bad_input_is_rejected(coords: torch.Tensor, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_tours(_model(), coords, **kwargs)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_cuda_decoding_and_a_training_step() -> None:
    torch.manual_seed(0)
    task = TSPPolicy(embed_dim=32, heads=4, layers=2, ff_dim=64).cuda()
    coords = torch.rand(8, 20, 2, device="cuda")
    loss = task.training_loss({"coords": coords})  # bf16 autocast on CUDA
    loss.backward()
    assert torch.isfinite(loss) and all(
        torch.isfinite(p.grad).all() for p in task.parameters() if p.grad is not None
    )
    for strategy in STRATEGIES:
        generator = torch.Generator(device="cuda").manual_seed(0)
        result = decode_tours(task.policy, coords, strategy=strategy, generator=generator)  # type: ignore[arg-type]
        assert result.tours.is_cuda
        torch.testing.assert_close(result.lengths, tour_length(coords, result.tours), rtol=1e-5, atol=1e-5)
    bf16 = decode_tours(task.policy, coords).lengths.cpu()  # multi-start x8 under bf16 autocast
    fp32 = decode_tours(task.policy.cpu(), coords.cpu(), amp=False).lengths
    assert (bf16.mean() / fp32.mean() - 1).abs() < 0.1  # bf16 decoding stays close to float32
