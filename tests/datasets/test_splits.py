"""``stratified_split``: disjoint, covering, per-class sizes, seeded, and HGCN's split for binary labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoattn.datasets import stratified_split


def hgcn_split_reference(
    labels: np.ndarray, val_prop: float, test_prop: float, seed: int
) -> tuple[set, set, set]:  # type: ignore[type-arg]
    """HGCN's ``split_data`` (binary labels) as its paper's code describes it: positives then negatives shuffled
    by the global numpy RNG seeded with ``seed``; ``round(p * min(#pos, #neg))`` of each go to val and test."""
    np.random.seed(seed)
    pos = labels.nonzero()[0]
    neg = (1.0 - labels).nonzero()[0]
    np.random.shuffle(pos)
    np.random.shuffle(neg)
    m = min(len(pos), len(neg))
    n_val, n_test = round(val_prop * m), round(test_prop * m)
    val = set(pos[:n_val]) | set(neg[:n_val])
    test = set(pos[n_val : n_val + n_test]) | set(neg[n_val : n_val + n_test])
    train = set(pos[n_val + n_test :]) | set(neg[n_val + n_test :])
    return train, val, test


def _sets(masks: tuple[torch.Tensor, ...]) -> tuple[set[int], ...]:
    return tuple(set(torch.nonzero(m).flatten().tolist()) for m in masks)


@pytest.mark.parametrize("seed", [0, 1234])
def test_balanced_split_reproduces_hgcn_on_binary_labels(seed: int) -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(1044) < 0.2).astype(np.float64)  # like disease_nc: 0./1. floats, positives rarer
    expected = hgcn_split_reference(labels, 0.10, 0.60, seed)
    got = _sets(stratified_split(labels.astype(np.int64), 0.10, 0.60, seed=seed, balanced=True))
    assert got == expected


@pytest.mark.parametrize("balanced", [False, True])
def test_split_is_a_partition_with_per_class_sizes(balanced: bool) -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [3] * 7)
    train, val, test = stratified_split(labels, 0.15, 0.15, seed=3, balanced=balanced)
    assert train.dtype == torch.bool and train.shape == labels.shape
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert (train | val | test).all()
    for c, n in enumerate([50, 30, 20, 7]):
        size = 7 if balanced else n
        assert int(val[labels == c].sum()) == round(0.15 * size)
        assert int(test[labels == c].sum()) == round(0.15 * size)


def test_split_is_seeded() -> None:
    labels = torch.arange(200) % 4
    a = stratified_split(labels, 0.2, 0.2, seed=5)
    b = stratified_split(labels, 0.2, 0.2, seed=5)
    c = stratified_split(labels, 0.2, 0.2, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize(
    ("labels", "val", "test", "match"),
    [
        (np.array([0.0, 1.0]), 0.1, 0.1, "integers"),
        (np.array([[0, 1]]), 0.1, 0.1, "1-d"),
        (np.array([-1, 1]), 0.1, 0.1, "non-negative"),
        (np.array([0, 1, 1]), 1.0, 0.0, "val_fraction"),
        (np.array([0, 1, 1]), 0.5, 0.5, r"val_fraction \+ test_fraction"),
        (np.array([0, 0, 1, 1]), 0.5, 0.4, "no training node"),
    ],
)
def test_split_rejects_bad_input(labels: np.ndarray, val: float, test: float, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        stratified_split(labels, val, test, seed=0)
