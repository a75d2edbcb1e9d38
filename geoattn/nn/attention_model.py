r"""The attention model for the Euclidean TSP (Kool, van Hoof, Welling 2019, "Attention, Learn to Solve
Routing Problems!", ICLR, arXiv:1803.08475), decoded from given start cities as in POMO (Kwon et al. 2020,
"POMO: Policy Optimization with Multiple Optima for Reinforcement Learning", NeurIPS, arXiv:2010.16011).

Encoder: a linear embedding of the 2-D coordinates followed by ``layers`` transformer layers without
positional encoding (the input is a set), each

.. math::
    \hat h = \mathrm{Norm}(h + \mathrm{MHA}(h)),\qquad h' = \mathrm{Norm}(\hat h + \mathrm{FF}(\hat h)),

with ``Norm`` an instance norm over the cities of each instance (POMO's choice; a layer norm is available).

Decoder: a trajectory that started at city :math:`f` and stands at city :math:`l` forms the context query
:math:`q = W_g \bar h + W_f h_f + W_l h_l` (:math:`\bar h` the mean node embedding), attends over the unvisited
cities with ``heads``-head attention (the glimpse, :math:`g = W_o\,\mathrm{MHA}(q, h_{\text{unvisited}})`), and
scores every city with one clipped compatibility

.. math::
    u_j = C \tanh\!\left(\frac{g^\top W_k h_j}{\sqrt{d}}\right),\qquad
    \log p(j) = u_j - \log \sum_{l \notin V} e^{u_l}\ (j \notin V),\qquad p(j) = 0\ (j \in V),

over the visited set :math:`V`. The start city is always given (POMO), so no learned first-step placeholder
exists; the last city is forced and contributes :math:`\log 1 = 0`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from geoattn.kernels.pointer_decode import PointerKeys

__all__ = ["EncodedInstances", "NormKind", "RolloutMode", "TSPAttentionModel"]

NormKind = Literal["instance", "layer"]
RolloutMode = Literal["greedy", "sample"]


class EncodedInstances(NamedTuple):
    """What :meth:`TSPAttentionModel.encode` precomputes once per instance for every decoding step.

    Attributes:
        nodes: ``[B, n, d]`` node embeddings :math:`h_j`.
        graph_query: ``[B, 1, d]`` :math:`W_g \\bar h`.
        last_queries: ``[B, n, d]`` :math:`W_l h_j`, the query term of a trajectory standing at city ``j``.
        glimpse_keys: ``[B, H, d/H, n]`` keys of the glimpse attention, transposed and scaled by
            :math:`1/\\sqrt{d/H}`.
        glimpse_values: ``[B, H, n, d/H]`` values of the glimpse attention.
        logit_keys: ``[B, d, n]`` :math:`W_k h_j` for the pointer logits (transposed, for one matmul a step).
    """

    nodes: torch.Tensor
    graph_query: torch.Tensor
    last_queries: torch.Tensor
    glimpse_keys: torch.Tensor
    glimpse_values: torch.Tensor
    logit_keys: torch.Tensor


class _Norm(nn.Module):
    """Instance norm over the cities of each instance (per feature), or layer norm over the features."""

    def __init__(self, dim: int, kind: NormKind) -> None:
        super().__init__()
        self.kind = kind
        self.norm: nn.Module = (
            nn.InstanceNorm1d(dim, affine=True) if kind == "instance" else nn.LayerNorm(dim)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, n, d] -> [B, n, d]
        if self.kind == "instance":
            return self.norm(h.transpose(1, 2)).transpose(1, 2)
        return self.norm(h)


class _EncoderLayer(nn.Module):
    """One post-norm transformer layer (multi-head self-attention, then a ReLU feed-forward)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, norm: NormKind) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.norm1 = _Norm(dim, norm)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim))
        self.norm2 = _Norm(dim, norm)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, n, d] -> [B, n, d]
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v)  # [B, H, n, d/H]
        h = self.norm1(h + self.out(att.transpose(1, 2).reshape(b, n, d)))
        return self.norm2(h + self.ff(h))


class TSPAttentionModel(nn.Module):
    r"""Transformer encoder over 2-D cities and a pointer decoder with masking and logit clipping (see the
    module docstring for the math).

    Args:
        embed_dim (int): width :math:`d` of every embedding. (default: ``128``)
        heads (int): attention heads :math:`H` in the encoder and the glimpse; must divide ``embed_dim``.
            (default: ``8``)
        layers (int): encoder layers. (default: ``6``)
        ff_dim (int): hidden width of the encoder's feed-forward blocks. (default: ``512``)
        clip (float): :math:`C > 0` of the tanh logit clipping. (default: ``10.0``)
        norm (str): ``"instance"`` or ``"layer"``. (default: ``"instance"``)

    Shapes:
        - :meth:`encode`: ``coords`` ``[B, n, 2]`` -> :class:`EncodedInstances`.
        - :meth:`pointer_keys`: :class:`EncodedInstances` -> the decoder's
          :class:`~geoattn.kernels.pointer_decode.PointerKeys` (what the fused decoding kernels read).
        - :meth:`rollout`: ``starts`` ``[B, P]`` -> tours ``[B, P, n]`` (long, each a permutation that
          begins at its start city) and summed log-probabilities ``[B, P]`` (float32).
        - :meth:`tour_log_likelihood`: ``tours`` ``[B, P, n]`` -> ``[B, P]`` (float32), teacher-forced.

    Memory per decoding step: a ``[B, H, P, n]`` attention tensor and ``[B, P, n]`` logits; the decoder
    runs ``n - 2`` steps.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        heads: int = 8,
        layers: int = 6,
        ff_dim: int = 512,
        clip: float = 10.0,
        norm: NormKind = "instance",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("embed_dim", embed_dim), ("heads", heads), ("ff_dim", ff_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
            raise ValueError(f"{name}: layers must be an int >= 0, got {layers!r}")
        if embed_dim % heads:
            raise ValueError(f"{name}: heads={heads} must divide embed_dim={embed_dim}")
        if not clip > 0 or not math.isfinite(clip):
            raise ValueError(f"{name}: clip must be a finite number > 0, got {clip!r}")
        if norm not in ("instance", "layer"):
            raise ValueError(f"{name}: norm must be 'instance' or 'layer', got {norm!r}")
        self.embed_dim = embed_dim
        self.heads = heads
        self.num_layers = layers
        self.ff_dim = ff_dim
        self.clip = float(clip)
        self.norm = norm
        self.embed = nn.Linear(2, embed_dim)
        self.encoder = nn.ModuleList(_EncoderLayer(embed_dim, heads, ff_dim, norm) for _ in range(layers))
        self.project_nodes = nn.Linear(embed_dim, 3 * embed_dim, bias=False)  # glimpse K, V; logit K
        self.project_graph = nn.Linear(embed_dim, embed_dim, bias=False)  # W_g
        self.project_first = nn.Linear(embed_dim, embed_dim, bias=False)  # W_f
        self.project_last = nn.Linear(embed_dim, embed_dim, bias=False)  # W_l
        self.project_out = nn.Linear(embed_dim, embed_dim, bias=False)  # W_o

    def config(self) -> dict[str, int | float | str]:
        """The constructor arguments, enough to rebuild the module for a state dict."""
        return {
            "embed_dim": self.embed_dim,
            "heads": self.heads,
            "layers": self.num_layers,
            "ff_dim": self.ff_dim,
            "clip": self.clip,
            "norm": self.norm,
        }

    def encode(self, coords: torch.Tensor) -> EncodedInstances:
        """Run the encoder on ``[B, n, 2]`` coordinates and precompute the decoder's projections."""
        h = self.embed(coords)
        for layer in self.encoder:
            h = layer(h)
        b, n, d = h.shape
        glimpse_k, glimpse_v, logit_k = self.project_nodes(h).chunk(3, dim=-1)
        split = (b, n, self.heads, d // self.heads)
        return EncodedInstances(
            nodes=h,
            graph_query=self.project_graph(h.mean(dim=1, keepdim=True)),
            last_queries=self.project_last(h),
            glimpse_keys=(
                glimpse_k.reshape(split).permute(0, 2, 3, 1) / math.sqrt(d // self.heads)
            ).contiguous(),
            glimpse_values=glimpse_v.reshape(split).transpose(1, 2).contiguous(),
            logit_keys=logit_k.transpose(1, 2).contiguous(),
        )

    def step_log_probs(
        self, enc: EncodedInstances, fixed_query: torch.Tensor, last: torch.Tensor, visited: torch.Tensor
    ) -> torch.Tensor:
        r"""Log-probabilities ``[B, P, n]`` (float32) of the next city for ``P`` trajectories per instance.

        Args:
            enc: the instances' encoding.
            fixed_query: ``[B, P, d]``, :math:`W_g \bar h + W_f h_f` of each trajectory.
            last: ``[B, P]`` the current city :math:`l` of each trajectory.
            visited: ``[B, P, n]`` bool, the visited set :math:`V`; at least one city must be unvisited.
        """
        b, p = last.shape
        d = self.embed_dim
        q_last = enc.last_queries.gather(1, last[..., None].expand(b, p, d))
        q = (fixed_query + q_last).view(b, p, self.heads, d // self.heads).transpose(1, 2)
        # A plain softmax attention: for one query per trajectory it beats the fused kernels on CPU.
        scores = (q @ enc.glimpse_keys).masked_fill(visited[:, None], -math.inf)  # [B, H, P, n]
        glimpse = torch.softmax(scores, dim=-1) @ enc.glimpse_values  # [B, H, P, d/H]
        g = self.project_out(glimpse.transpose(1, 2).reshape(b, p, d))
        logits = (g @ enc.logit_keys).float() / math.sqrt(d)  # [B, P, n]
        logits = (self.clip * torch.tanh(logits)).masked_fill(visited, -math.inf)
        return torch.log_softmax(logits, dim=-1)

    def pointer_keys(self, enc: EncodedInstances) -> PointerKeys:
        r"""The decoder's per-instance tensors for :func:`geoattn.kernels.pointer_decode.pointer_decode`.

        The glimpse keys and values and :math:`W_l h_j` of ``enc``, and the logit keys with the glimpse's output
        projection folded in, :math:`\tilde k_j = W_o^\top W_k h_j` (so :math:`u_j = (W_o c)^\top W_k h_j
        = c^\top \tilde k_j`, one ``[B, n, d] x [d, d]`` matmul per instance instead of one per step).
        """
        return PointerKeys(
            glimpse_keys=enc.glimpse_keys,
            glimpse_values=enc.glimpse_values,
            logit_keys=self.project_out.weight.t() @ enc.logit_keys,
            last_queries=enc.last_queries,
        )

    def fixed_query(self, enc: EncodedInstances, starts: torch.Tensor) -> torch.Tensor:
        r""":math:`W_g \bar h + W_f h_f`, ``[B, P, d]``, for trajectories starting at ``starts`` ``[B, P]``."""
        b, p = starts.shape
        h_first = enc.nodes.gather(1, starts[..., None].expand(b, p, self.embed_dim))
        return enc.graph_query + self.project_first(h_first)

    def tour_log_likelihood(self, enc: EncodedInstances, tours: torch.Tensor) -> torch.Tensor:
        r"""Teacher-forced :math:`\sum_{t=1}^{n-2} \log p(\tau_t \mid \tau_0, \dots, \tau_{t-1})` of given tours.

        All ``n - 2`` decisions of a tour are scored in one parallel pass (no decoding loop): decision ``t`` is
        a query standing at :math:`\tau_{t-1}` with visited set :math:`\{\tau_0, \dots, \tau_{t-1}\}`. The
        start :math:`\tau_0` is given and the last city is forced, so neither contributes. Equals the
        ``log_likelihood`` that :meth:`rollout` returns for the same tours.

        Args:
            enc: from :meth:`encode`, ``B`` instances of ``n >= 3`` cities.
            tours: ``[B, P, n]`` long, each a permutation of ``0..n-1``.

        Returns:
            ``[B, P]`` float32 log-likelihoods. Memory: a ``[B, H, P (n-2), n]`` attention tensor.
        """
        b, p, n = tours.shape
        steps = n - 2
        position = torch.empty_like(tours).scatter_(
            2, tours, torch.arange(n, device=tours.device).expand(b, p, n)
        )
        t = torch.arange(1, steps + 1, device=tours.device)
        visited = position[:, :, None, :] < t[:, None]  # [B, P, T, n]: cities placed before step t
        fixed = self.fixed_query(enc, tours[..., 0])[:, :, None].expand(-1, -1, steps, -1)
        log_p = self.step_log_probs(
            enc,
            fixed.reshape(b, p * steps, -1),
            tours[..., :steps].reshape(b, p * steps),
            visited.reshape(b, p * steps, n),
        )
        chosen = log_p.gather(2, tours[..., 1 : steps + 1].reshape(b, p * steps, 1))
        return chosen.view(b, p, steps).sum(dim=-1)

    def rollout(
        self,
        enc: EncodedInstances,
        starts: torch.Tensor,
        *,
        mode: RolloutMode = "greedy",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode ``P`` tours per instance, trajectory ``p`` starting at city ``starts[:, p]``.

        Args:
            enc: from :meth:`encode`, ``B`` instances of ``n >= 2`` cities.
            starts: ``[B, P]`` long start cities.
            mode: ``"greedy"`` (the most likely city each step) or ``"sample"`` (draw from the policy).
            generator: for ``"sample"``, on the device of ``enc``; ``None`` uses the global RNG.

        Returns:
            ``(tours [B, P, n], log_likelihood [B, P])``: the tours and the sum of the log-probabilities of
            their decisions (differentiable when grad is enabled).
        """
        if mode not in ("greedy", "sample"):
            raise ValueError(
                f"{type(self).__name__}.rollout: mode must be 'greedy' or 'sample', got {mode!r}"
            )
        b, n, _ = enc.nodes.shape
        p = starts.shape[1]
        fixed_query = self.fixed_query(enc, starts)
        visited = torch.zeros(b, p, n, dtype=torch.bool, device=starts.device).scatter(
            2, starts[..., None], True
        )
        last = starts
        steps = [starts]
        log_likelihood = torch.zeros(b, p, device=starts.device)
        for _ in range(n - 2):
            log_p = self.step_log_probs(enc, fixed_query, last, visited)
            if mode == "greedy":
                last = log_p.argmax(dim=-1)
            else:
                flat = log_p.exp().view(b * p, n)
                last = torch.multinomial(flat, 1, generator=generator).view(b, p)
            log_likelihood = log_likelihood + log_p.gather(2, last[..., None]).squeeze(2)
            visited = visited.scatter(2, last[..., None], True)
            steps.append(last)
        if n >= 2:
            steps.append((~visited).to(torch.uint8).argmax(dim=-1))  # the one city left
        return torch.stack(steps, dim=-1), log_likelihood

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())
