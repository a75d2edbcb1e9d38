"""The closed form checked against its definition: a generic constrained KL minimiser (scipy SLSQP).

HSA is defined as the row-stochastic matrix closest to softmax attention, summed KL over rows, among those
constant on every block between two distinct sibling sub-trees. Here that optimisation is solved
numerically over the free values (one per token diagonal, one per ordered sibling pair) without any use of
the closed form, and compared with both the dense closed form and the DP.
"""

from __future__ import annotations

import math

import hierarchy_helpers as helpers
import numpy as np
import pytest
import scipy.optimize
import torch

from geoattn.hierarchy import DOMAINS, Hierarchy, Node
from geoattn.nn.hierarchical_attention import (
    SiblingPositionalBias,
    hierarchical_attention,
    hsa_dense_reference,
)


def _block_structure(h: Hierarchy) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """``var[i, j]``: index of the free value of entry (i, j); plus (parent, B, C) of each block value."""
    n = h.num_tokens
    parent = h.parent.tolist()

    def ancestors(u: int) -> list[int]:  # u, parent(u), ..., root
        chain = [u]
        while parent[chain[-1]] >= 0:
            chain.append(parent[chain[-1]])
        return chain

    var = np.full((n, n), -1, dtype=np.int64)
    blocks: dict[tuple[int, int, int], int] = {}
    for i in range(n):
        var[i, i] = i
    for i in range(n):
        up_i = ancestors(i)
        for j in range(n):
            if i == j:
                continue
            up_j = ancestors(j)
            lca = next(a for a in up_i if a in up_j)
            b = up_i[up_i.index(lca) - 1]  # child of the LCA containing i
            c = up_j[up_j.index(lca) - 1]
            var[i, j] = blocks.setdefault((lca, b, c), n + len(blocks))
    return var, sorted(blocks, key=blocks.__getitem__)


def _kl_minimiser(log_p: np.ndarray, var: np.ndarray) -> np.ndarray:
    """argmin sum_i KL(theta_i || p_i) over theta[i, j] = x[var[i, j]], rows summing to 1."""
    n = log_p.shape[0]
    num_vars = int(var.max()) + 1

    def objective(x: np.ndarray) -> float:
        theta = x[var]
        return float((theta * (np.log(theta) - log_p)).sum())

    def gradient(x: np.ndarray) -> np.ndarray:
        g = np.zeros_like(x)
        np.add.at(g, var, np.log(x[var]) - log_p + 1.0)
        return g

    constraints = [
        {
            "type": "eq",
            "fun": lambda x, i=i: x[var[i]].sum() - 1.0,
            "jac": lambda x, i=i: np.bincount(var[i], minlength=num_vars).astype(float),
        }
        for i in range(n)
    ]
    result = scipy.optimize.minimize(
        objective,
        np.full(num_vars, 1.0 / n),
        jac=gradient,
        constraints=constraints,
        bounds=[(1e-12, 1.0)] * num_vars,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    assert result.success, result.message
    return result.x[var]  # type: ignore[no-any-return]


TREES = [
    [[0, 1], [2, [3, 4]], 5],
    [[[0, 1, 2], 3], [4, 5], [6]],
    Node([Node([0, 1, 2, 3], domain="grid", grid_shape=(2, 2)), [4, 5], 6], domain="sequence"),
    Node(
        [[0, 1], Node([2, 3, 4], domain="graph", edges=[(0, 1)]), Node([5, 6], domain="set")],
        domain="sequence",
    ),
]


@pytest.mark.parametrize("score", ["dot", "sqdist"])
@pytest.mark.parametrize("tree", range(len(TREES)))
def test_closed_form_is_the_constrained_kl_minimiser(tree: int, score: str) -> None:
    h = Hierarchy.from_nested(TREES[tree])
    n = h.num_tokens
    q, k, v = helpers.qkv(n, 1, 3, torch.float64, seed=tree)
    positional = SiblingPositionalBias(1, max_offset=2).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(tree))
    _, theta = hsa_dense_reference(q, k, v, h, score=score, bias=positional)

    # Target: softmax of the scores plus the positional term of each token pair's sibling block.
    scale = 1 / math.sqrt(3)
    s = scale * (q[:, 0] @ k[:, 0].T) if score == "dot" else -scale * torch.cdist(q[:, 0], k[:, 0]).square()
    var, blocks = _block_structure(h)
    coord, domain = h.coord.tolist(), h.domain.tolist()
    edges = {tuple(sorted(e)) for e in h.graph_edges.T.tolist()}
    bias = torch.zeros(n, n, dtype=torch.float64)
    for a, b, c in blocks:
        name = DOMAINS[domain[a]]
        if name == "graph":  # the trees above have at most one edge per graph node
            offset = (1 if tuple(sorted((b, c))) in edges else -1, 0)
        else:
            offset = (coord[c][0] - coord[b][0], coord[c][1] - coord[b][1])
        bias[torch.from_numpy(var == n + blocks.index((a, b, c)))] = positional.pair_bias(name, offset)[0]
    log_p = torch.log_softmax(s + bias, dim=-1).detach().numpy()

    minimiser = _kl_minimiser(log_p, var)
    np.testing.assert_allclose(minimiser, theta[0].detach().numpy(), rtol=0, atol=2e-7)
    # and the DP's output is that matrix applied to the values
    out = hierarchical_attention(q, k, v, h, score=score, bias=positional)
    np.testing.assert_allclose(out[:, 0].detach().numpy(), minimiser @ v[:, 0].numpy(), rtol=0, atol=2e-6)


def test_minimiser_is_sensitive_to_the_constraints() -> None:
    """The check can fail: the closed form for one tree is not the minimiser for another."""
    h, other = Hierarchy.from_nested(TREES[0]), Hierarchy.from_nested([[0, 1, 2], [3, 4, 5]])
    q, k, v = helpers.qkv(6, 1, 3, torch.float64, seed=0)
    log_p = torch.log_softmax((q[:, 0] @ k[:, 0].T) / math.sqrt(3), dim=-1).numpy()
    _, theta_other = hsa_dense_reference(q, k, v, other)
    minimiser = _kl_minimiser(log_p, _block_structure(h)[0])
    assert np.abs(minimiser - theta_other[0].numpy()).max() > 1e-3
