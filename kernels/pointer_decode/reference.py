r"""The specification of :func:`geoattn.kernels.pointer_decode.pointer_decode`: pointer decoding in torch.

The decoder of :class:`geoattn.nn.TSPAttentionModel` (Kool et al. 2019) for ``B`` instances of ``n`` cities
and ``P`` trajectories per instance (POMO multi-start rows: the per-instance tensors of :class:`PointerKeys`
are shared by the ``P`` rows of an instance, never copied per row). With ``H`` heads of width
:math:`d_k = d / H`, a trajectory that started at city :math:`f` and stands at city :math:`l` with visited set
:math:`V` takes one step as follows:

.. math::
    q &= \underbrace{W_g \bar h + W_f h_f}_{\texttt{fixed\_queries}}
        + \underbrace{W_l h_l}_{\texttt{last\_queries}[l]},\\
    a_{hj} &= \operatorname{softmax}_{j \notin V}\left(\frac{q_h^\top K_{hj}}{\sqrt{d_k}}\right),\qquad
    c = \big[\textstyle\sum_j a_{hj} V_{hj}\big]_{h=1..H} \in \mathbb{R}^d \quad\text{(the glimpse)},\\
    u_j &= c^\top \tilde k_j,\quad \tilde k_j = W_o^\top W_k h_j
        \qquad\text{(so } u_j = (W_o c)^\top W_k h_j\text{, the model's compatibility)},\\
    \ell_j &= C \tanh\!\big(u_j / \sqrt{d}\big)\ (j \notin V),\qquad \ell_j = -\infty\ (j \in V).

Every term of :math:`q` is a gather or a precomputed per-instance tensor, and :math:`W_o` is folded into the
logit keys :math:`\tilde k_j` once per instance, so a step has no ``d x d`` matmul: it is one masked
single-query attention per row and one dot product per city.

The choice, with :math:`\bar V` the unvisited cities:

- greedy: :math:`\arg\max_{j \in \bar V} u_j`, the first index on ties. :math:`\tanh` is increasing, so this is
  the most likely city; taking it on :math:`u` keeps float32 saturation of :math:`\tanh` (and the difference
  between two :math:`\tanh` implementations) from creating or breaking ties;
- sampled, from a supplied uniform :math:`U \in [0, 1)` per row and step (inverse CDF, so backends given the
  same noise draw the same city): with :math:`w_j = e^{\ell_j - \max_i \ell_i}` (:math:`w_j = 0` on
  :math:`V`), :math:`F_j = \sum_{i \le j} w_i` and :math:`W = \sum_j w_j`, the city is
  :math:`\min\big(\#\{j : F_j \le U W\},\ \max \bar V\big)`: the first :math:`j` with :math:`F_j > U W`
  (always unvisited), or the last unvisited city should rounding leave none.

Then the state is updated: the city is written at the step's position of the partial tour and marked visited;
it is the next step's :math:`l`. A tour starts at its start city (position 0) and takes ``n - 1`` steps (the
last one is forced: a single unvisited city remains).

Dtypes: the inputs may be float16, bfloat16, float32 or float64; steps compute in float32 (float64 for float64
inputs), after one upcast of the per-instance tensors.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "PointerKeys",
    "compute_dtype",
    "initial_state",
    "pointer_choice",
    "pointer_compatibility",
    "pointer_decode_reference",
    "pointer_decode_step_reference",
]


class PointerKeys(NamedTuple):
    r"""Per-instance tensors of the decoder, computed once per instance (shared by its ``P`` rows).

    Attributes:
        glimpse_keys: ``[B, H, d/H, n]`` glimpse keys :math:`K_{hj}`, scaled by :math:`1/\sqrt{d/H}`.
        glimpse_values: ``[B, H, n, d/H]`` glimpse values :math:`V_{hj}`.
        logit_keys: ``[B, d, n]`` :math:`\tilde k_j = W_o^\top W_k h_j`, the pointer's keys with the glimpse's
            output projection folded in.
        last_queries: ``[B, n, d]`` :math:`W_l h_j`, the query term of a row standing at city ``j``.
    """

    glimpse_keys: torch.Tensor
    glimpse_values: torch.Tensor
    logit_keys: torch.Tensor
    last_queries: torch.Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a decoding step computes in for inputs of ``dtype``: float64 stays, the rest is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def initial_state(starts: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tours [B, P, n] long, visited [B, P, n] bool)`` of rows that stand at ``starts`` ``[B, P]``:
    position 0 holds the start city (later positions are 0 until written), the start is visited."""
    b, p = starts.shape
    tours = torch.zeros(b, p, n, dtype=torch.long, device=starts.device)
    tours[..., 0] = starts
    visited = torch.zeros(b, p, n, dtype=torch.bool, device=starts.device)
    return tours, visited.scatter_(2, starts[..., None], True)


def pointer_compatibility(
    keys: PointerKeys, fixed_queries: torch.Tensor, last: torch.Tensor, visited: torch.Tensor
) -> torch.Tensor:
    r"""The compatibilities :math:`u` ``[B, P, n]`` of every city (visited ones too) for rows standing at
    ``last`` ``[B, P]`` with visited sets ``visited`` ``[B, P, n]`` (bool, at least one city unvisited); the
    tensors of ``keys`` and ``fixed_queries`` ``[B, P, d]`` in the compute dtype (:func:`compute_dtype`)."""
    b, p = last.shape
    heads, width = keys.glimpse_keys.shape[1:3]
    d = heads * width
    q = fixed_queries + keys.last_queries.gather(1, last[..., None].expand(b, p, d))
    q = q.view(b, p, heads, width).transpose(1, 2)  # [B, H, P, d/H]
    scores = (q @ keys.glimpse_keys).masked_fill(visited[:, None], -math.inf)  # [B, H, P, n]
    glimpse = torch.softmax(scores, dim=-1) @ keys.glimpse_values  # [B, H, P, d/H]
    return glimpse.transpose(1, 2).reshape(b, p, d) @ keys.logit_keys  # [B, P, n]


def pointer_choice(
    u: torch.Tensor, visited: torch.Tensor, *, clip: float, embed_dim: int, noise: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The next city ``[B, P]`` (long) from the compatibilities ``u`` ``[B, P, n]`` of ``embed_dim``-wide
    embeddings (the :math:`d` of :math:`C \tanh(u / \sqrt d)`): greedy (``noise`` is ``None``) or sampled with
    the uniforms ``noise`` ``[B, P]`` (module docstring)."""
    if noise is None:
        return u.masked_fill(visited, -math.inf).argmax(dim=-1)
    logits = (clip * torch.tanh(u / math.sqrt(embed_dim))).masked_fill(visited, -math.inf)
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))  # [B, P, n], 0 where visited
    below = (weights.cumsum(dim=-1) <= (noise * weights.sum(dim=-1))[..., None]).sum(dim=-1)
    city = torch.arange(visited.shape[-1], device=visited.device)
    return torch.minimum(below, torch.where(visited, -1, city).amax(dim=-1))


def pointer_decode_step_reference(
    keys: PointerKeys,
    fixed_queries: torch.Tensor,
    tours: torch.Tensor,
    visited: torch.Tensor,
    position: int,
    *,
    clip: float,
    noise: torch.Tensor | None = None,
) -> None:
    r"""One decoding step (module docstring) for every row, updating ``tours`` and ``visited`` in place.

    Args:
        keys: the per-instance tensors, in the compute dtype (:func:`compute_dtype`).
        fixed_queries: ``[B, P, d]`` :math:`W_g \bar h + W_f h_f` per row, in the compute dtype.
        tours: ``[B, P, n]`` long partial tours; the row stands at ``tours[..., position - 1]`` and the chosen
            city is written to ``tours[..., position]``.
        visited: ``[B, P, n]`` bool visited sets, at least one city unvisited per row; the chosen city is added.
        position: the step's position in the tours, ``1 <= position < n``.
        clip: :math:`C` of the tanh clipping.
        noise: ``[B, P]`` uniform :math:`U \in [0, 1)` for a sampled choice; ``None``: greedy.
    """
    u = pointer_compatibility(keys, fixed_queries, tours[..., position - 1], visited)
    embed_dim = fixed_queries.shape[-1]
    choice = pointer_choice(u, visited, clip=clip, embed_dim=embed_dim, noise=noise)
    tours[..., position] = choice
    visited.scatter_(2, choice[..., None], True)


def pointer_decode_reference(
    keys: PointerKeys,
    fixed_queries: torch.Tensor,
    starts: torch.Tensor,
    *,
    clip: float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Decode whole tours: ``n - 1`` steps of :func:`pointer_decode_step_reference` from ``starts``.

    Args:
        keys: the per-instance tensors (:class:`PointerKeys`), any floating dtype.
        fixed_queries: ``[B, P, d]`` :math:`W_g \bar h + W_f h_f` per row.
        starts: ``[B, P]`` long start cities.
        clip: :math:`C` of the tanh clipping.
        noise: ``[B, P, n - 1]`` uniforms, ``noise[..., t - 1]`` for the city at position ``t``; ``None``:
            greedy.

    Returns:
        ``[B, P, n]`` long tours, each a permutation starting at its start city.
    """
    dtype = compute_dtype(fixed_queries.dtype)
    keys = PointerKeys(*(t.to(dtype) for t in keys))
    fixed_queries = fixed_queries.to(dtype)
    n = keys.last_queries.shape[1]
    tours, visited = initial_state(starts, n)
    for position in range(1, n):
        step_noise = None if noise is None else noise[..., position - 1]
        pointer_decode_step_reference(
            keys, fixed_queries, tours, visited, position, clip=clip, noise=step_noise
        )
    return tours
