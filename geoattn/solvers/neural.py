r"""Batched decoding of :class:`~geoattn.nn.TSPAttentionModel` tours: greedy, POMO multi-start, sampling,
each optionally over the 8 symmetries of the unit square.

For an instance :math:`x \in [0, 1]^{n \times 2}`, every strategy decodes a set of candidate tours and keeps the
shortest by Euclidean length on the given coordinates:

- ``"greedy"``: one tour from city 0, the most likely city at every step;
- ``"multistart"`` (POMO, Kwon et al. 2020, arXiv:2010.16011): one greedy tour from each of ``P`` start
  cities; ``num_starts=None`` means :math:`P = \min(n, 100)`; with :math:`P < n` the starts are spread evenly
  over the city indices, :math:`s_i = \lfloor i (n - 1) / (P - 1) \rfloor` (deterministic);
- ``"sampling"``: ``num_samples`` tours drawn from the policy, each from a start city drawn uniformly.

``augment=True`` decodes each instance in the 8 images :math:`T(x)` under the symmetries of the square
(identity, reflections, rotations by multiples of 90 degrees; POMO's x8 augmentation). Each is an isometry, so
a tour's length is the same in every image and is measured on the original coordinates.

The decoding loop is :func:`geoattn.kernels.pointer_decode.pointer_decode` on the policy's
:meth:`~geoattn.nn.TSPAttentionModel.pointer_keys` (``backend``: its torch reference, or a fused Triton kernel
on CUDA); sampling draws one uniform per row and step from ``generator`` and inverts the step's CDF.

Memory: instances (and, for a single large instance, start cities) are processed in chunks so that one decoding
step holds at most about ``max_elements`` attention entries (``rows x heads x n``); the encoder's attention is
``scaled_dot_product_attention``, whose fused kernels keep ``O(n)`` memory. Cost grows as :math:`O(n^2)` per
tour (``n - 2`` steps over ``n`` cities), so decode large instances (``n`` in the thousands) greedily or with
few starts; ``n = 10000`` greedy at ``B = 1`` is about 10^4 sequential steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import torch

from geoattn.kernels import Backend
from geoattn.kernels.pointer_decode import pointer_decode
from geoattn.nn.attention_model import TSPAttentionModel

from ._tour import tour_length

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_MAX_STARTS",
    "DecodeResult",
    "DecodeStrategy",
    "decode_tours",
    "spread_starts",
    "symmetry_augment",
]

DecodeStrategy = Literal["greedy", "multistart", "sampling"]
#: Start cities of ``"multistart"`` when ``num_starts`` is ``None``: ``min(n, DEFAULT_MAX_STARTS)``.
DEFAULT_MAX_STARTS: Final = 100
#: Default bound on the attention entries (rows x heads x n) of one decoding step.
DEFAULT_MAX_ELEMENTS: Final = 1 << 25


@dataclass(frozen=True)
class DecodeResult:
    """The best tour found per instance.

    Attributes:
        tours: ``[B, n]`` long, each a permutation of ``0..n-1``.
        lengths: ``[B]`` Euclidean lengths of the closed tours on the given coordinates (their dtype).
    """

    tours: torch.Tensor
    lengths: torch.Tensor


def symmetry_augment(coords: torch.Tensor) -> torch.Tensor:
    r"""The 8 images of ``[B, n, 2]`` points under the symmetries of the unit square: ``[8, B, n, 2]``.

    With :math:`(x, y)` the coordinates: :math:`(x, y), (y, x), (1-x, y), (y, 1-x), (x, 1-y), (1-y, x),
    (1-x, 1-y), (1-y, 1-x)`; image 0 is the identity.
    """
    x, y = coords[..., 0], coords[..., 1]
    images = [(x, y), (y, x), (1 - x, y), (y, 1 - x), (x, 1 - y), (1 - y, x), (1 - x, 1 - y), (1 - y, 1 - x)]
    return torch.stack([torch.stack(pair, dim=-1) for pair in images])


def spread_starts(n: int, count: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    r"""``count`` start cities spread evenly over ``0..n-1``: :math:`\lfloor i (n-1) / (count-1) \rfloor`.

    ``count = n`` gives every city; ``count = 1`` gives city 0. Returns a ``[count]`` long tensor.
    """
    if count == 1:
        return torch.zeros(1, dtype=torch.long, device=device)
    return torch.div(torch.arange(count, device=device) * (n - 1), count - 1, rounding_mode="floor")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"decode_tours: {name} must be an int >= 1, got {value!r}")
    return value


def _check_coords(coords: object) -> torch.Tensor:
    if not isinstance(coords, torch.Tensor) or coords.dim() != 3 or coords.shape[-1] != 2:
        shape = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise ValueError(f"decode_tours: coords must be a [B, n, 2] tensor, got {shape}")
    if not coords.dtype.is_floating_point:
        raise ValueError(f"decode_tours: coords must be floating point, got {coords.dtype}")
    if coords.shape[1] < 3:
        raise ValueError(f"decode_tours: a tour needs n >= 3 cities, got n={coords.shape[1]}")
    if not torch.isfinite(coords).all():
        raise ValueError("decode_tours: coords contain NaN or infinite values")
    return coords


def decode_tours(
    model: TSPAttentionModel,
    coords: torch.Tensor,
    *,
    strategy: DecodeStrategy = "multistart",
    num_starts: int | None = None,
    num_samples: int = 16,
    augment: bool = True,
    generator: torch.Generator | None = None,
    amp: bool | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    backend: Backend = "auto",
) -> DecodeResult:
    """Decode tours with ``model`` and keep the shortest per instance (strategies in the module docstring).

    Runs under ``torch.no_grad()`` on the device of ``coords``; ``model`` must be on the same device.

    Args:
        model: the policy.
        coords: ``[B, n, 2]`` cities, ``n >= 3``, normalised to the unit square by the caller.
        strategy: ``"greedy"``, ``"multistart"`` or ``"sampling"``. (default: ``"multistart"``)
        num_starts: start cities per image for ``"multistart"`` (``1..n``); ``None``: ``min(n, 100)``.
        num_samples: tours per image for ``"sampling"``. (default: ``16``)
        augment: decode all 8 symmetric images of each instance. (default: ``True``)
        generator: draws the sampled tours and their start cities, on the device of ``coords``; ``None``
            uses the global RNG. Greedy and multi-start decoding are deterministic.
        amp: run the model under bfloat16 autocast; ``None`` means on for CUDA inputs, off otherwise.
        max_elements: bound on the attention entries of one decoding step (the chunk size).
        backend: the decoder, :func:`geoattn.kernels.pointer_decode.pointer_decode`: ``"auto"`` (the Triton
            kernel for CUDA inputs except where it is measured slower, see
            :func:`~geoattn.kernels.pointer_decode.auto_prefers_torch`; its torch reference otherwise), ``"torch"`` or
            ``"triton"``; the greedy tours are the same. (default: ``"auto"``)

    Returns:
        A :class:`DecodeResult` with ``tours [B, n]`` and ``lengths [B]``.
    """
    coords = _check_coords(coords)
    if strategy not in ("greedy", "multistart", "sampling"):
        raise ValueError(
            f"decode_tours: strategy must be 'greedy', 'multistart' or 'sampling', got {strategy!r}"
        )
    batch, n, _ = coords.shape
    device = coords.device
    if strategy == "greedy":
        starts = torch.zeros(1, dtype=torch.long, device=device)
    elif strategy == "multistart":
        count = min(n, DEFAULT_MAX_STARTS) if num_starts is None else _positive_int("num_starts", num_starts)
        if count > n:
            raise ValueError(f"decode_tours: num_starts must be <= n={n}, got {count}")
        starts = spread_starts(n, count, device=device)
    else:
        count = _positive_int("num_samples", num_samples)
        starts = torch.randint(n, (count,), generator=generator, device=device)
    _positive_int("max_elements", max_elements)

    images = symmetry_augment(coords) if augment else coords[None]  # [A, B, n, 2]
    views = images.reshape(-1, n, 2)  # image a of instance b is row a * B + b
    per_step = starts.numel() * model.heads * n  # attention entries of one instance-view per step
    rows = max(1, max_elements // per_step)
    start_chunk = max(1, max_elements // (model.heads * n)) if rows == 1 else starts.numel()
    use_amp = device.type == "cuda" if amp is None else amp
    best_len = torch.full((views.shape[0],), math.inf, dtype=coords.dtype, device=device)
    best_tour = torch.zeros(views.shape[0], n, dtype=torch.long, device=device)
    with torch.no_grad():
        for lo in range(0, views.shape[0], rows):
            chunk = views[lo : lo + rows]
            original = coords[torch.arange(lo, lo + chunk.shape[0], device=device) % batch]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                enc = model.encode(chunk)
                keys = model.pointer_keys(enc)
            for s in range(0, starts.numel(), start_chunk):
                part = starts[s : s + start_chunk].expand(chunk.shape[0], -1)
                b, p = part.shape
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                    fixed = model.fixed_query(enc, part)
                noise = None
                if strategy == "sampling":
                    noise = torch.rand(b, p, n - 1, generator=generator, device=device)
                tours = pointer_decode(keys, fixed, part, clip=model.clip, noise=noise, backend=backend)
                # lengths in the coordinates' dtype, outside autocast
                flat = tour_length(original.repeat_interleave(p, dim=0), tours.reshape(b * p, n))
                length, index = flat.view(b, p).min(dim=1)
                better = length < best_len[lo : lo + b]
                best_len[lo : lo + b] = torch.where(better, length, best_len[lo : lo + b])
                chosen = tours[torch.arange(b, device=device), index]
                best_tour[lo : lo + b] = torch.where(better[:, None], chosen, best_tour[lo : lo + b])
    length, image = best_len.view(-1, batch).min(dim=0)  # over the images
    tours = best_tour.view(-1, batch, n)[image, torch.arange(batch, device=device)]
    return DecodeResult(tours=tours, lengths=length)
