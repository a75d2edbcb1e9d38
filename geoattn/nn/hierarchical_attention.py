r"""Hierarchical self-attention (HSA): exact dynamic programming over nested signals.

From Amizadeh, Abdali, Li and Koishida, "Hierarchical Self-Attention: Generalizing Neural Attention
Mechanics to Multi-Scale Problems" (NeurIPS 2025, `arXiv:2509.15448 <https://arxiv.org/abs/2509.15448>`_).

The input is a forest (:class:`~geoattn.hierarchy.Hierarchy`) whose leaves are tokens. HSA is the
row-stochastic matrix :math:`\Theta` closest to flat softmax attention :math:`P_i = \operatorname{softmax}_j
(s_{ij})` in the summed KL divergence,

.. math::
    \Theta = \arg\min_{\Theta} \sum_i \operatorname{KL}(\theta_i \,\|\, P_i)
    \quad\text{s.t.}\quad \theta_{ij} = \theta_{i'j'} \ \text{for } i, i' \in B,\ j, j' \in C,

for every pair of distinct sibling sub-trees :math:`B \ne C`: a token attends to a sibling sub-tree only as
a whole. Writing :math:`n_B` for leaf counts and :math:`\bar q_B, \bar k_B, \bar v_B` for means over leaves,
the minimiser has a closed form. For each family (parent :math:`A`, children :math:`B, C, \dots`)

.. math::
    W_A = \operatorname{softmax}_{\text{row}}(\ell^A), \qquad
    \ell^A_{BC} = \bar s_{BC} + \log n_C + \operatorname{pos}_A(B, C)\ (B \ne C), \qquad
    \ell^A_{BB} = -f_B,

where :math:`\bar s_{BC}` is the mean score over :math:`B \times C` (:math:`\bar q_B \cdot \bar k_C / \sqrt d`
for dot-product scores) and :math:`f` is the per-leaf free energy, :math:`f_i = -s_{ii}` for a token and
:math:`f_A = -\sum_B \tfrac{n_B}{n_A} \log Z^A_B` with :math:`Z^A_B` the normaliser of row :math:`B`.
Top-down, :math:`\Lambda_B = \Lambda_A + \log W_A[B, B]` is the log of the mass a token of :math:`B` keeps
inside :math:`B` (:math:`\Lambda_{\text{root}} = 0`) and

.. math::
    m_B = m_A + e^{\Lambda_A} \sum_{C \ne B} W_A[B, C]\, \bar v_C, \qquad
    y_i = m_i + e^{\Lambda_i} v_i .

Equivalently :math:`\theta_{ij} = e^{\Lambda_A} W_A[B, C] / n_C` for :math:`i \in B, j \in C` under their
lowest common ancestor :math:`A`, and :math:`\theta_{ii} = e^{\Lambda_i}`. A flat tree (one root over all
tokens) gives softmax attention exactly; unary nodes change nothing. The DP costs
:math:`O(d\,(N + \sum_A b_A^2))` instead of :math:`O(N^2 d)`.

Derivation (the issue's, re-checked here and by the tests against a generic constrained KL minimiser): the
objective separates into families; within one, a row of :math:`B` sends mass :math:`w_C` to each sibling
:math:`C` (spread evenly over its :math:`n_C` leaves) and keeps :math:`w_B` inside :math:`B`, where the
optimal inner arrangement scaled by :math:`w_B` costs :math:`w_B (f_B + \log w_B)`. Minimising
:math:`\sum_C w_C (\log w_C - \ell_C)` over the simplex gives :math:`w = \operatorname{softmax}(\ell)` with
value :math:`-\log Z`.

Scores :math:`s_{ij}`: ``"dot"``, :math:`q_i \cdot k_j \cdot \text{scale}`; ``"sqdist"``,
:math:`-\|q_i - k_j\|^2 \cdot \text{scale}`, whose block mean is exact from node means and mean squared
norms, :math:`-(\overline{\|q\|^2}_B - 2 \bar q_B \cdot \bar k_C + \overline{\|k\|^2}_C)`. Geodesic
(hyperbolic) distances have no such decomposition and are not offered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoattn.hierarchy import DOMAINS, FamilyBlock, Hierarchy, LevelPlan

from ._checks import check_heads

__all__ = [
    "HierarchicalSelfAttention",
    "HsaScore",
    "SiblingPositionalBias",
    "hierarchical_attention",
    "hsa_dense_reference",
]

HsaScore = Literal["dot", "sqdist"]
#: A sibling bias: the ``[F, H, b, b]`` term :math:`\operatorname{pos}_A(B, C)` of a block of families.
SiblingBias = Callable[[FamilyBlock], Tensor]

_SEQUENCE, _GRID, _GRAPH, _SET = (DOMAINS.index(d) for d in ("sequence", "grid", "graph", "set"))


class SiblingPositionalBias(nn.Module):
    r"""Learnable sibling positional terms :math:`\operatorname{pos}_A(B, C)`, one per head and domain.

    The position of sibling :math:`C` relative to :math:`B` in the parent's domain is bucketed and looked
    up in a per-head table, with one table per domain:

    * ``sequence``: offset :math:`o = \operatorname{idx}(C) - \operatorname{idx}(B)`, clipped to
      :math:`[-R, R]` (:math:`2R + 1` entries);
    * ``grid``: 2-D offset, each axis clipped to :math:`[-R, R]` (:math:`(2R + 1)^2` entries);
    * ``graph``: hop distance :math:`1 \dots R`, and one entry for farther or unreachable siblings;
    * ``set``: no term (zero).

    The term applies between distinct siblings only (the diagonal logit of a family is the free energy),
    so unary nodes stay no-ops. Entries start at zero.

    Args:
        num_heads (int): number of heads :math:`H`.
        max_offset (int): clipping radius :math:`R` (default: ``8``).

    Shapes:
        - **input:** a :class:`~geoattn.hierarchy.FamilyBlock` with ``F`` families of (padded) size ``b``.
        - **output:** ``[F, H, b, b]``.
    """

    def __init__(self, num_heads: int, max_offset: int = 8) -> None:
        super().__init__()
        if num_heads < 1 or max_offset < 1:
            raise ValueError(
                f"SiblingPositionalBias: num_heads and max_offset must be >= 1, got {num_heads} and {max_offset}"
            )
        self.num_heads = num_heads
        self.max_offset = max_offset
        width = 2 * max_offset + 1
        self._grid_offset = width
        self._graph_offset = width + width * width
        self.weight = nn.Parameter(torch.empty(self._graph_offset + max_offset + 2, num_heads))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All terms zero."""
        nn.init.zeros_(self.weight)

    def _index(self, domain: Tensor, rel: Tensor) -> Tensor:
        r = self.max_offset
        a, b = rel[..., 0], rel[..., 1]
        ca, cb = a.clamp(-r, r) + r, b.clamp(-r, r) + r
        sequence = ca
        grid = self._grid_offset + ca * (2 * r + 1) + cb
        graph = self._graph_offset + torch.where((a < 0) | (a > r), r + 1, a)
        return torch.where(
            domain == _SEQUENCE,
            sequence,
            torch.where(domain == _GRID, grid, torch.where(domain == _GRAPH, graph, 0)),
        )

    def forward(self, block: FamilyBlock) -> Tensor:
        """The ``[F, H, b, b]`` terms of ``block``'s families (zero for ``set`` families)."""
        domain = block.domain[:, None, None]  # [F, 1, 1]
        index = self._index(domain, block.relative_positions())  # [F, b, b]
        # F.embedding, not self.weight[index]: millions of pairs share a few dozen rows, and the backward of
        # advanced indexing (indexing_backward_kernel) walks each row's duplicates serially on CUDA: 2.6 s of
        # a 2.7 s IMDB step (64 reviews x 400 tokens, flat tree, two layers) on an H200; embedding's backward
        # is a segmented reduction built for repeated rows.
        bias = F.embedding(index, self.weight)  # [F, b, b, H]
        bias = bias.masked_fill((domain == _SET)[..., None], 0.0)
        return bias.permute(0, 3, 1, 2)

    def pair_bias(self, domain: str, offset: tuple[int, int]) -> Tensor:
        """``[H]`` term for one sibling pair: ``domain`` of the parent, ``offset`` of ``C`` relative to ``B``.

        A scalar path (for :func:`hsa_dense_reference` and inspection); ``offset`` is ``(hops, 0)`` for
        ``graph`` (``-1``: unreachable).
        """
        code = DOMAINS.index(domain)  # type: ignore[arg-type,unused-ignore]
        if code == _SET:
            return self.weight.new_zeros(self.num_heads)
        r = self.max_offset
        a, b = offset
        if code == _SEQUENCE:
            row = min(max(a, -r), r) + r
        elif code == _GRID:
            row = self._grid_offset + (min(max(a, -r), r) + r) * (2 * r + 1) + min(max(b, -r), r) + r
        else:
            row = self._graph_offset + (a if 0 <= a <= r else r + 1)
        return self.weight[row]

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, max_offset={self.max_offset}"


# ---------------------------------------------------------------------------------------------- inputs
def _flatten(
    name: str, query: Tensor, key: Tensor, value: Tensor, hierarchy: Hierarchy
) -> tuple[Tensor, Tensor, Tensor, Hierarchy, Callable[[Tensor], Tensor]]:
    """Inputs as ``[T, H, d]`` plus the hierarchy over ``T`` slots and a function restoring the layout."""
    if not (query.dim() == key.dim() == value.dim()) or query.dim() not in (3, 4):
        raise ValueError(
            f"{name}: query, key and value must all be [T, H, d] (flat tokens) or [B, H, N, d], got shapes "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if query.shape != key.shape or query.shape[:-1] != value.shape[:-1]:
        raise ValueError(
            f"{name}: query and key must have the same shape and value the same leading dimensions, got "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if query.dim() == 3:
        if query.shape[0] != hierarchy.num_tokens:
            raise ValueError(
                f"{name}: {query.shape[0]} tokens but the hierarchy covers {hierarchy.num_tokens} token slots"
            )
        return query, key, value, hierarchy, lambda out: out
    batch, heads, n, _ = query.shape
    if hierarchy.num_tokens == batch * n:
        flat_hierarchy = hierarchy
    elif hierarchy.num_tokens == n:
        flat_hierarchy = hierarchy.repeat(batch)
    else:
        raise ValueError(
            f"{name}: input [B={batch}, H, N={n}, d] needs a hierarchy over B*N={batch * n} token slots (a batch, "
            f"see Hierarchy.batch) or over N={n} (shared by the batch), got {hierarchy.num_tokens}"
        )

    def flat(x: Tensor) -> Tensor:
        return x.transpose(1, 2).reshape(batch * n, heads, x.shape[-1])

    def restore(out: Tensor) -> Tensor:
        return out.reshape(batch, n, heads, out.shape[-1]).transpose(1, 2)

    return flat(query), flat(key), flat(value), flat_hierarchy, restore


# ---------------------------------------------------------------------------------------------- DP
def _gather(source: Tensor, index: Tensor) -> Tensor:
    """``source[index]`` for an integer ``index`` of any shape, as ``index_select`` (cheaper backward)."""
    return source.index_select(0, index.reshape(-1)).view(*index.shape, *source.shape[1:])


@dataclass
class _Nodes:
    """Per-node statistics of one level: means over leaves, free energy, mean squared norms."""

    q: Tensor  # [n, H, dk]
    k: Tensor  # [n, H, dk]
    v: Tensor  # [n, H, dv]
    f: Tensor  # [n, H]
    qq: Tensor | None  # [n, H] (sqdist only)
    kk: Tensor | None

    def select(self, index: Tensor) -> _Nodes:
        return _Nodes(
            _gather(self.q, index),
            _gather(self.k, index),
            _gather(self.v, index),
            _gather(self.f, index),
            None if self.qq is None else _gather(self.qq, index),
            None if self.kk is None else _gather(self.kk, index),
        )

    @staticmethod
    def cat(parts: list[_Nodes]) -> _Nodes:
        if len(parts) == 1:
            return parts[0]
        return _Nodes(
            torch.cat([p.q for p in parts]),
            torch.cat([p.k for p in parts]),
            torch.cat([p.v for p in parts]),
            torch.cat([p.f for p in parts]),
            None if parts[0].qq is None else torch.cat([p.qq for p in parts if p.qq is not None]),
            None if parts[0].kk is None else torch.cat([p.kk for p in parts if p.kk is not None]),
        )


def _hsa_flat(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    plan: LevelPlan,
    *,
    scale: float,
    score: HsaScore,
    bias: SiblingBias | None,
) -> Tensor:
    num_tokens, heads, _ = q.shape
    dv = v.shape[-1]
    leaf = plan.leaf_token
    qs, ks, vs = q.index_select(0, leaf), k.index_select(0, leaf), v.index_select(0, leaf)
    if score == "dot":
        nodes = _Nodes(qs, ks, vs, -scale * (qs * ks).sum(-1), None, None)
    else:
        nodes = _Nodes(
            qs, ks, vs, scale * (qs - ks).square().sum(-1), qs.square().sum(-1), ks.square().sum(-1)
        )
    count = q.new_ones(leaf.shape[0])
    saved: list[list[tuple[Tensor, Tensor, Tensor] | None]] = []
    sizes = [leaf.shape[0]]

    # ---- bottom-up: node means and free energies, one batched step per block of families
    for level in plan.levels:
        parts: list[_Nodes] = []
        level_saved: list[tuple[Tensor, Tensor, Tensor] | None] = []
        for block in level.blocks:
            index, mask = block.child_index, block.child_mask  # [F, b]
            if block.size == 1:  # unary families: the parent is its child
                parts.append(nodes.select(index[:, 0]))
                level_saved.append(None)
                continue
            b = block.size
            children = nodes.select(index)  # [F, b, H, d] means, [F, b, H] energies
            qc, kc, vc = children.q, children.k, children.v
            n_child = torch.where(mask, _gather(count, index), 0.0)  # [F, b]
            share = n_child / n_child.sum(-1, keepdim=True)  # [F, b]: n_B / n_A
            # The [F, H, b, b] logits are built in place: one buffer instead of one per step.
            logits = torch.einsum("fihd,fjhd->fhij", qc, kc)
            if score == "dot":
                logits = logits.mul_(scale)
            else:
                assert children.qq is not None and children.kk is not None
                qq = children.qq.transpose(1, 2)  # [F, H, b]
                kk = children.kk.transpose(1, 2)
                logits = (
                    logits.mul_(2.0 * scale).sub_(scale * qq[..., :, None]).sub_(scale * kk[..., None, :])
                )
            logits = logits.add_(n_child.clamp_min(1.0).log()[:, None, None, :])
            if bias is not None and block.has_position:
                logits = logits.add_(bias(block).to(logits.dtype))
            f_child = children.f.transpose(1, 2)  # [F, H, b]
            logits.diagonal(dim1=-2, dim2=-1).copy_(-f_child)
            if not block.is_full:  # padding slots take no mass (each padded row keeps its diagonal)
                eye = torch.eye(b, dtype=torch.bool, device=logits.device)
                logits = logits.masked_fill_(~(mask[:, None, None, :] | eye), -math.inf)
            log_w = torch.log_softmax(logits, dim=-1)  # [F, H, b, b]
            log_w_diag = log_w.diagonal(dim1=-2, dim2=-1)  # [F, H, b] = -f_B - log Z_B
            parts.append(
                _Nodes(
                    torch.einsum("fb,fbhd->fhd", share, qc),
                    torch.einsum("fb,fbhd->fhd", share, kc),
                    torch.einsum("fb,fbhd->fhd", share, vc),
                    (share[:, None, :] * (f_child + log_w_diag)).sum(-1),  # -sum_B n_B/n_A log Z_B
                    None if children.qq is None else torch.einsum("fb,fbh->fh", share, children.qq),
                    None if children.kk is None else torch.einsum("fb,fbh->fh", share, children.kk),
                )
            )
            level_saved.append((log_w_diag, log_w.exp(), vc.transpose(1, 2)))
        nodes = _Nodes.cat(parts)
        count = level.leaf_count.to(q.dtype)
        saved.append(level_saved)
        sizes.append(level.num_nodes)

    # ---- top-down: log-mass kept inside each node and the message received from outside it
    log_mass = q.new_zeros(sizes[-1], heads)
    message = q.new_zeros(sizes[-1], heads, dv)
    for depth in reversed(range(len(plan.levels))):
        level = plan.levels[depth]
        mass_parts: list[Tensor] = []
        message_parts: list[Tensor] = []
        for block, cache in zip(level.blocks, saved[depth], strict=True):
            rows = slice(block.start, block.start + block.num_families)
            lam, msg = log_mass[rows], message[rows]  # [F, H], [F, H, dv]
            if cache is None:
                mass_parts.append(lam)
                message_parts.append(msg)
                continue
            log_w_diag, w, v_child = cache
            lam_child = lam[..., None] + log_w_diag  # [F, H, b]
            # sum_{C != B} W[B, C] v_C without materialising the off-diagonal matrix
            outside = w @ v_child - log_w_diag.exp()[..., None] * v_child  # [F, H, b, dv]
            msg_child = msg[:, :, None, :] + lam.exp()[..., None, None] * outside
            slots = block.valid_slots
            mass_parts.append(lam_child.transpose(1, 2).reshape(-1, heads).index_select(0, slots))
            message_parts.append(msg_child.transpose(1, 2).reshape(-1, heads, dv).index_select(0, slots))
        below = sizes[depth]
        log_mass = q.new_zeros(below, heads).index_copy(0, level.scatter_index, torch.cat(mass_parts))
        message = q.new_zeros(below, heads, dv).index_copy(0, level.scatter_index, torch.cat(message_parts))

    out = message + log_mass.exp()[..., None] * vs  # level 0: the tokens in leaf order
    return q.new_zeros(num_tokens, heads, dv).index_copy(0, leaf, out)


def _check_score(name: str, score: str) -> None:
    if score not in ("dot", "sqdist"):
        raise ValueError(f"{name}: score must be 'dot' or 'sqdist', got {score!r}")


def hierarchical_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    hierarchy: Hierarchy,
    *,
    scale: float | None = None,
    score: HsaScore = "dot",
    bias: SiblingBias | None = None,
) -> Tensor:
    r"""Hierarchical self-attention by exact dynamic programming over ``hierarchy`` (see the module docs).

    One batched step per block of similar-sized families per level, bottom-up (node means and free
    energies) then top-down (kept mass :math:`\Lambda` and messages :math:`m`); no Python loop over
    nodes. Differentiable by autograd in every input and in ``bias``'s parameters.

    Args:
        query, key: ``[T, H, d_k]`` (flat tokens, PyG style) or ``[B, H, N, d_k]``.
        value: ``[T, H, d_v]`` or ``[B, H, N, d_v]``.
        hierarchy: a forest over ``T`` token slots, or with ``[B, H, N, d]`` inputs over ``B * N`` slots
            (:meth:`Hierarchy.batch(..., num_tokens=N) <geoattn.hierarchy.Hierarchy.batch>`) or over ``N``
            (one tree shared by the batch).
        scale: score scale (default: ``None``, :math:`1/\sqrt{d_k}`).
        score: ``"dot"`` (:math:`s_{ij} = \text{scale}\; q_i \cdot k_j`) or ``"sqdist"``
            (:math:`s_{ij} = -\text{scale}\,\|q_i - k_j\|^2`) (default: ``"dot"``).
        bias: sibling term :math:`\operatorname{pos}_A(B, C)`, e.g. a :class:`SiblingPositionalBias`
            (default: ``None``).

    Returns:
        ``[T, H, d_v]`` or ``[B, H, N, d_v]``; zero at padding tokens. Half-precision inputs are computed in
        float32 and the result cast back.

    Speed: the DP issues a few kernels per level and block, so on a GPU it is launch-bound below ~16k
    tokens. It never synchronises with the host, so for a fixed hierarchy and input shape PyTorch's
    ``torch.cuda.make_graphed_callables(lambda q, k, v: hierarchical_attention(q, k, v, tree), (q, k, v))``
    captures forward and backward as CUDA graphs and replays them with one launch each (measured in
    ``benchmarks/hsa.py``, "graphed").
    """
    _check_score("hierarchical_attention", score)
    q, k, v, flat_hierarchy, restore = _flatten("hierarchical_attention", query, key, value, hierarchy)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    plan = flat_hierarchy.plan(q.device)
    compute = torch.promote_types(q.dtype, torch.float32)  # half precision: statistics in float32
    out = _hsa_flat(q.to(compute), k.to(compute), v.to(compute), plan, scale=scale, score=score, bias=bias)
    return restore(out.to(v.dtype))


def hsa_dense_reference(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    hierarchy: Hierarchy,
    *,
    scale: float | None = None,
    score: HsaScore = "dot",
    bias: SiblingPositionalBias | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The full HSA matrix :math:`\Theta` built node by node from the closed form, and its output.

    The specification the DP is tested against: plain Python over the canonical forest (no level plan),
    block means taken directly over the token-level score matrix, hop distances from networkx, and the
    positional terms through :meth:`SiblingPositionalBias.pair_bias`. Cost :math:`O(N^2)`; for tests.

    Args:
        query, key, value, hierarchy, scale, score: as :func:`hierarchical_attention`.
        bias: sibling positional terms (default: ``None``).

    Returns:
        ``(output, attention)``: output as :func:`hierarchical_attention`; attention ``[H, T, T]`` over the
        flat token slots (rows of padding tokens are zero, other rows sum to 1).
    """
    _check_score("hsa_dense_reference", score)
    q, k, v, h, restore = _flatten("hsa_dense_reference", query, key, value, hierarchy)
    num_tokens, heads, dk = q.shape
    scale = dk**-0.5 if scale is None else float(scale)
    if score == "dot":
        s = scale * torch.einsum("ihd,jhd->hij", q, k)
    else:
        s = -scale * (q[:, None] - k[None, :]).square().sum(-1).permute(2, 0, 1)
    parent = h.parent.tolist()
    domain = h.domain.tolist()
    coord = [tuple(c) for c in h.coord.tolist()]
    children: dict[int, list[int]] = {}
    for u, p in enumerate(parent):
        if p >= 0:
            children.setdefault(p, []).append(u)
    depth = {}
    for u in range(len(parent)):
        d, a = 0, parent[u]
        while a >= 0:
            d, a = d + 1, parent[a]
        depth[u] = d
    internal = sorted(children, key=lambda u: -depth[u])
    leaves: dict[int, list[int]] = {t: [t] for t in range(num_tokens) if parent[t] >= 0}
    for a in internal:
        leaves[a] = [t for c in children[a] for t in leaves[c]]
    edges_by_parent: dict[int, list[tuple[int, int]]] = {}
    for x, y in h.graph_edges.T.tolist():
        edges_by_parent.setdefault(parent[x], []).append((x, y))

    free: dict[int, Tensor] = {t: -s[:, t, t] for t in leaves if t < num_tokens}
    weights: dict[int, Tensor] = {}
    for a in internal:
        kids = children[a]
        n = [len(leaves[c]) for c in kids]
        hops: dict[int, dict[int, int]] = {}
        if domain[a] == _GRAPH:
            g = nx.Graph()
            g.add_nodes_from(kids)
            g.add_edges_from(edges_by_parent.get(a, []))
            hops = {u: dict(lengths) for u, lengths in nx.all_pairs_shortest_path_length(g)}
        rows = []
        for i, bi in enumerate(kids):
            row = []
            for j, cj in enumerate(kids):
                if i == j:
                    row.append(-free[bi])
                    continue
                block = s[:, leaves[bi]][:, :, leaves[cj]].mean(dim=(-2, -1))
                logit = block + math.log(n[j])
                if bias is not None:
                    if domain[a] == _GRAPH:
                        offset = (hops[bi].get(cj, -1), 0)
                    else:
                        offset = (coord[cj][0] - coord[bi][0], coord[cj][1] - coord[bi][1])
                    logit = logit + bias.pair_bias(DOMAINS[domain[a]], offset).to(s.dtype)
                row.append(logit)
            rows.append(torch.stack(row, dim=-1))
        logits = torch.stack(rows, dim=-2)  # [H, b, b]
        log_z = torch.logsumexp(logits, dim=-1)
        weights[a] = torch.softmax(logits, dim=-1)
        free[a] = -sum((n[i] / sum(n)) * log_z[:, i] for i in range(len(kids)))  # type: ignore[assignment]

    theta = s.new_zeros(heads, num_tokens, num_tokens)
    log_mass = {a: s.new_zeros(heads) for a in internal if parent[a] < 0}
    for a in reversed(internal):  # increasing depth
        kids = children[a]
        for i, bi in enumerate(kids):
            log_mass[bi] = log_mass[a] + weights[a][:, i, i].log()
            rows_i = torch.tensor(leaves[bi])
            for j, cj in enumerate(kids):
                if i != j:
                    value_ij = log_mass[a].exp() * weights[a][:, i, j] / len(leaves[cj])  # [H]
                    cols = torch.tensor(leaves[cj])
                    theta[:, rows_i[:, None], cols[None, :]] = value_ij[:, None, None]
    for t in range(num_tokens):
        if parent[t] >= 0:
            theta[:, t, t] = log_mass[t].exp()
    out = torch.einsum("hij,jhd->ihd", theta, v)
    return restore(out), theta


class HierarchicalSelfAttention(nn.Module):
    r"""Multi-head hierarchical self-attention over a nested signal (Amizadeh et al., NeurIPS 2025).

    For token features :math:`x_i` and a forest whose leaves are the tokens,

    .. math::
        q_i = W_Q x_i,\quad k_i = W_K x_i,\quad v_i = W_V x_i,\qquad
        y_i = W_O \bigl[\textstyle\sum_j \theta^{(h)}_{ij} v^{(h)}_j\bigr]_h,

    with :math:`\Theta^{(h)}` the hierarchical self-attention matrix of head :math:`h` (the KL-closest
    row-stochastic matrix to softmax attention that is constant on every block between sibling sub-trees;
    see :mod:`geoattn.nn.hierarchical_attention`), computed by an exact dynamic programme in
    :math:`O(d\,(N + \sum_A b_A^2))`. On a flat tree it is standard multi-head softmax attention.

    Args:
        embed_dim (int): model dimension :math:`D` (a multiple of ``num_heads``).
        num_heads (int): number of heads :math:`H`; :math:`D_h = D / H`. (default: ``1``)
        score (str): ``"dot"`` or ``"sqdist"`` (negative squared distance). (default: ``"dot"``)
        positional (bool): add learnable sibling positional terms :math:`\operatorname{pos}_A(B, C)`
            (:class:`SiblingPositionalBias`). (default: ``False``)
        max_offset (int): clipping radius of the positional terms. (default: ``8``)
        bias (bool): biases in the four projections. (default: ``True``)
        device, dtype: factory arguments for the parameters. (default: ``None``)

    Shapes:
        - **input:** ``x`` ``[B, N, D]`` with a hierarchy over ``B * N`` or ``N`` token slots, or flat
          ``[T, D]`` (PyG style) with a hierarchy over ``T`` slots.
        - **output:** same shape as ``x``; zero at padding tokens.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        *,
        score: HsaScore = "dot",
        positional: bool = False,
        max_offset: int = 8,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_heads(name, embed_dim, num_heads)
        _check_score(name, score)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.score: HsaScore = score
        self.max_offset = max_offset
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.positional = (
            SiblingPositionalBias(num_heads, max_offset).to(device=device, dtype=dtype)
            if positional
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases and zero positional terms."""
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        if self.positional is not None:
            self.positional.reset_parameters()

    def _heads(
        self, x: Tensor, hierarchy: Hierarchy
    ) -> tuple[Tensor, Tensor, Tensor, Hierarchy, tuple[int, ...]]:
        name = type(self).__name__
        if x.dim() not in (2, 3) or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{name}: x must be [B, N, {self.embed_dim}] or [T, {self.embed_dim}], got {tuple(x.shape)}"
            )
        shape = tuple(x.shape)
        flat = x.reshape(-1, self.embed_dim)
        if x.dim() == 3 and hierarchy.num_tokens == x.shape[1] and x.shape[0] > 1:
            hierarchy = hierarchy.repeat(x.shape[0])
        if flat.shape[0] != hierarchy.num_tokens:
            raise ValueError(
                f"{name}: x has {flat.shape[0]} tokens ({'x'.join(map(str, shape[:-1]))}) but the hierarchy covers "
                f"{hierarchy.num_tokens} token slots"
            )

        def split(t: Tensor) -> Tensor:
            return t.reshape(-1, self.num_heads, self.head_dim)

        return split(self.q_proj(flat)), split(self.k_proj(flat)), split(self.v_proj(flat)), hierarchy, shape

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """Attend over ``hierarchy``; see the class docstring for shapes."""
        q, k, v, flat_hierarchy, shape = self._heads(x, hierarchy)
        out = hierarchical_attention(q, k, v, flat_hierarchy, score=self.score, bias=self.positional)
        out = self.out_proj(out.reshape(-1, self.embed_dim))
        mask = flat_hierarchy.plan(out.device).token_mask
        return out.masked_fill(~mask[:, None], 0.0).reshape(shape)

    @torch.no_grad()
    def attention_weights(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """The dense ``[H, T, T]`` HSA matrices for ``x`` (quadratic cost; for inspection and small inputs)."""
        q, k, v, flat_hierarchy, _ = self._heads(x, hierarchy)
        return hsa_dense_reference(q, k, v, flat_hierarchy, score=self.score, bias=self.positional)[1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.embed_dim}, num_heads={self.num_heads}, score={self.score!r}, "
            f"positional={self.positional is not None})"
        )
