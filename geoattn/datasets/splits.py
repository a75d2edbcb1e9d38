r"""Seeded, per-class train/validation/test splits of node labels.

Two rules, both drawing every class's nodes in a random order from one ``numpy.random.RandomState(seed)``
(classes in descending label order) and cutting the order into validation, test and training nodes:

- **proportional** (``balanced=False``, a stratified split): class :math:`c` with :math:`n_c` nodes gives
  :math:`\operatorname{round}(p_{val} n_c)` nodes to validation and :math:`\operatorname{round}(p_{test} n_c)`
  to test, so each split keeps the class proportions;
- **balanced** (``balanced=True``, HGCN's ``split_data``; Chami et al. 2019, arXiv:1910.12933): every class
  gives :math:`\operatorname{round}(p_{val} m)` and :math:`\operatorname{round}(p_{test} m)` nodes with
  :math:`m = \min_c n_c`, so validation and test hold every class equally often and training gets all the
  rest. For binary labels this reproduces HGCN's split exactly (same shuffles of the same index arrays, in
  the same order: positives, then negatives); HGCN's code is only correct for binary labels, this rule
  extends it to any number of classes.

``round`` is Python's (round half to even), as in HGCN.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["stratified_split"]


def stratified_split(
    labels: torch.Tensor | np.ndarray,
    val_fraction: float,
    test_fraction: float,
    *,
    seed: int,
    balanced: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-class random split of nodes into train, validation and test (see the module docstring).

    Args:
        labels: ``[N]`` integer class labels (``>= 0``).
        val_fraction: :math:`p_{val} \in [0, 1)`.
        test_fraction: :math:`p_{test} \in [0, 1)`, with :math:`p_{val} + p_{test} < 1`.
        seed: seed of the ``numpy.random.RandomState`` that orders each class.
        balanced: take the same number of nodes of every class for validation and test (HGCN's rule)
            instead of the same fraction of every class.

    Returns:
        ``(train_mask, val_mask, test_mask)``, each ``[N]`` bool on the CPU, disjoint and covering all nodes.

    Raises:
        ValueError: for fractions out of range, labels that are not a 1-d array of non-negative integers, or
            a split that leaves no training node.
    """
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(
            f"stratified_split: labels must be a non-empty 1-d array of non-negative integers, got dtype "
            f"{y.dtype} and shape {y.shape}"
        )
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"stratified_split: {name} must be in [0, 1), got {value}")
    if not val_fraction + test_fraction < 1.0:
        raise ValueError(
            f"stratified_split: val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    rng = np.random.RandomState(seed)
    classes = np.unique(y)[::-1]  # descending: for 0/1 labels HGCN's order (positives first)
    members = [np.flatnonzero(y == c) for c in classes]
    smallest = min(len(m) for m in members)
    val = np.zeros(y.shape[0], dtype=bool)
    test = np.zeros(y.shape[0], dtype=bool)
    for index in members:
        rng.shuffle(index)
        size = smallest if balanced else len(index)
        n_val, n_test = round(val_fraction * size), round(test_fraction * size)
        val[index[:n_val]] = True
        test[index[n_val : n_val + n_test]] = True
    train = ~(val | test)
    if not train.any():
        raise ValueError(
            f"stratified_split: val_fraction={val_fraction} and test_fraction={test_fraction} leave no "
            "training node"
        )
    return torch.from_numpy(train), torch.from_numpy(val), torch.from_numpy(test)
