"""The fused 1-N cross entropy of distance scores: equal to the materialised path (``sparse_lcwa_loss`` and PyKEEN's
``process_lcwa_scores`` on dense labels) in value and every gradient, through the torch reference and the Triton
kernel (the interpreter on CPU). ``FastLCWATrainingLoop(fused_loss=True)`` is tested with the loop, in
``test_training.py``."""

from __future__ import annotations

import pytest
import torch
from pykeen.losses import CrossEntropyLoss

from geoattn.kernels.distance_logsumexp import distance_scores_reference
from geoattn.kg.losses import PositiveTargets, dense_labels, fused_lcwa_cross_entropy, sparse_lcwa_loss

# ---------------------------------------------------------------------------------------------------------------
# fused_lcwa_cross_entropy == the materialised losses


def _targets(num_rows: int, num_targets: int, gen: torch.Generator) -> PositiveTargets:
    """1-3 positives per row, one row with most targets positive, a positive listed twice (a duplicate) and
    some with multiplicity 2 (duplicated training triples)."""
    rows, cols = [], []
    for row in range(num_rows):
        n = num_targets - 3 if row == 2 else int(torch.randint(1, 4, (1,), generator=gen))
        cols += torch.randperm(num_targets, generator=gen)[:n].tolist()
        rows += [row] * n
    rows.insert(1, rows[0])
    cols.insert(1, cols[0])
    values = 1.0 + (torch.rand(len(rows), generator=gen) < 0.2).double()
    return PositiveTargets(torch.tensor(rows), torch.tensor(cols), values)


@pytest.mark.parametrize(
    ("dtype", "backend"),
    [(torch.float64, "torch"), (torch.float32, "torch"), (torch.float32, "triton")],
    ids=["float64", "float32", "float32-triton"],
)
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_equals_materialised(
    dtype: torch.dtype, backend: str, squared: bool, label_smoothing: float, reduction: str
) -> None:
    gen = torch.Generator().manual_seed(5)
    num_rows, num_targets, dim = 7, 23, 5
    targets = _targets(num_rows, num_targets, gen)
    inputs = [
        torch.randn(num_rows, dim, generator=gen, dtype=torch.float64),  # q
        torch.randn(num_targets, dim, generator=gen, dtype=torch.float64),  # t
        torch.randn(num_targets, generator=gen, dtype=torch.float64),  # gamma
        torch.randn(num_rows, generator=gen, dtype=torch.float64),  # beta
    ]
    inputs[1][4] = inputs[0][0]  # a positive-or-not column at distance 0 of row 0
    q, t, gamma, beta = (x.to(dtype).requires_grad_() for x in inputs)
    ours = fused_lcwa_cross_entropy(
        q,
        t,
        gamma,
        beta,
        targets,
        squared=squared,
        label_smoothing=label_smoothing,
        num_targets=num_targets,
        reduction=reduction,
        backend=backend,  # type: ignore[arg-type]
    )
    scores = distance_scores_reference(q, t, gamma, squared=squared) + beta[:, None]
    loss = CrossEntropyLoss(reduction=reduction)
    sparse = sparse_lcwa_loss(loss, scores, targets, label_smoothing)
    labels = dense_labels(targets, num_rows, num_targets, dtype)
    theirs = loss.process_lcwa_scores(
        scores, labels, label_smoothing=label_smoothing, num_entities=num_targets
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, sparse, rtol=tol, atol=tol)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=tol, atol=tol)
    grads = torch.autograd.grad(ours, (q, t, gamma, beta))
    for expected in (sparse, theirs):
        for name, g_ours, g_expected in zip(
            ("q", "t", "gamma", "beta"),
            grads,
            torch.autograd.grad(expected, (q, t, gamma, beta), retain_graph=True),
            strict=True,
        ):
            torch.testing.assert_close(
                g_ours, g_expected, rtol=10 * tol, atol=10 * tol, msg=lambda m, n=name: f"grad {n}: {m}"
            )


def test_fused_without_biases_and_errors() -> None:
    gen = torch.Generator().manual_seed(6)
    targets = _targets(3, 6, gen)
    q, t = torch.randn(3, 4, generator=gen), torch.randn(6, 4, generator=gen)
    ours = fused_lcwa_cross_entropy(
        q, t, None, None, targets, squared=True, label_smoothing=None, num_targets=6
    )
    scores = distance_scores_reference(q, t, squared=True)
    expected = sparse_lcwa_loss(CrossEntropyLoss(), scores, targets)
    torch.testing.assert_close(ours, expected)
    kwargs = dict(squared=True, label_smoothing=0.0)
    with pytest.raises(ValueError, match="num_targets=5 must be the number of rows of t"):
        fused_lcwa_cross_entropy(q, t, None, None, targets, num_targets=5, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        fused_lcwa_cross_entropy(q, t, None, None, targets, num_targets=6, reduction="none", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"beta must be None or \[B\] = \[3\]"):
        fused_lcwa_cross_entropy(q, t, None, torch.zeros(6), targets, num_targets=6, **kwargs)  # type: ignore[arg-type]
