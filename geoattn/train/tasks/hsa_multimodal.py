r"""A hierarchical multimodal task whose label needs both modalities: SST sentences paired with digit images.

**The pairing is constructed**: nothing in the data relates a sentence to an image. Each sample pairs an
SST-2 sentence (a 1-D text sequence, :mod:`~geoattn.train.tasks.hsa_text`) with an 8x8 image of scikit-learn's
bundled handwritten digits (``sklearn.datasets.load_digits``, 1,797 images, no download), and its label is

.. math::
    y = \text{positive}(\text{sentence}) \oplus \text{odd}(\text{digit})

(:func:`xor_label`). Sentiment and parity are drawn independently and uniformly for every sample (then a
sentence of that sentiment and an image of that parity, uniformly), so each modality alone is independent of
the label: a text-only or image-only model is at 50% by construction on the validation and test pairs, and
only a model that reads both can do better.

Training: a from-scratch model given only XOR labels sees no first-order signal for either factor and stays
at chance (measured: 50% after 939 steps with a mean readout, after 600 with per-modality readouts), so by
default 30% of the *training* samples show one modality only and carry the same rule with the absent modality
counted as negative / even (a text alone: its sentiment; an image alone: its parity). The single-modality
baselines train on the same samples with the other modality hidden (the other modality's solo samples left
out); on test pairs they stay at 50% whatever they learn, because the hidden factor is independent of what
they see.

The hierarchy of a sample spans the two domains under one ``set`` root:

- text: a ``sequence`` node over the sentence's words;
- image: the 8x8 grid as 16 tokens of 2x2 pixels (4 features each), grouped as a ``grid`` of 2x2 quadrants,
  each a ``grid`` of 2x2 patches.

``modalities`` keeps one modality only (the single-modality baselines: the same model on the text tree or on
the image tree). Splits: sentences from SST's train / dev / test files, images from a seeded 60 / 20 / 20 split
of the digits, so test pairs use unseen sentences and unseen images.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Unpack

import numpy as np

from geoattn.hierarchy import DOMAINS

from .hsa_classification import BatchOptions, FloatArray, IntArray, SampleTree, TreeClassificationData
from .hsa_text import _root, sst_samples

__all__ = ["MODALITIES", "PhraseDigitPairs", "digit_patches", "load_digit_splits", "pair_sample", "xor_label"]

_SET, _SEQUENCE, _GRID = (DOMAINS.index(d) for d in ("set", "sequence", "grid"))
#: The modalities of a sample, as accepted by ``modalities``.
MODALITIES: tuple[str, ...] = ("text", "image")
#: Patches per image side and pixels per patch side.
_PATCHES, _PATCH = 4, 2


def xor_label(positive: int | IntArray, odd: int | IntArray) -> int | IntArray:
    """The label rule: ``1`` when exactly one of "the sentence is positive" and "the digit is odd" holds."""
    return positive ^ odd


def digit_patches(image: FloatArray) -> FloatArray:
    """``[16, 4]``: an ``[8, 8]`` image (values 0..16) as 2x2-pixel patches in row-major patch order, scaled to [0, 1]."""
    p, s = _PATCHES, _PATCH
    return (image.reshape(p, s, p, s).transpose(0, 2, 1, 3).reshape(p * p, s * s) / 16.0).astype(np.float32)


@functools.lru_cache(maxsize=2)
def load_digit_splits(seed: int = 0) -> dict[str, tuple[FloatArray, IntArray]]:
    """scikit-learn's digits (bundled, no download) split 60 / 20 / 20 (seeded): ``{split: (images, digits)}``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("PhraseDigitPairs needs scikit-learn (pip install scikit-learn)") from e
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32)
    target = np.asarray(digits.target, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(target))
    cut = [int(0.6 * len(order)), int(0.8 * len(order))]
    parts = {"train": order[: cut[0]], "val": order[cut[0] : cut[1]], "test": order[cut[1] :]}
    return {name: (images[index], target[index]) for name, index in parts.items()}


def pair_sample(
    text: SampleTree | None, patches: FloatArray | None, label: int, *, text_positions: int
) -> SampleTree:
    """One sample over the given modalities (module docstring); text positions ``0..``, image positions
    ``text_positions + patch``."""
    tokens: list[IntArray] = []
    positions: list[IntArray] = []
    modality: list[IntArray] = []
    features: list[FloatArray] = []
    n_text = 0 if text is None else text.num_tokens
    n_image = 0 if patches is None else patches.shape[0]
    n = n_text + n_image
    # internal nodes: [text], [image, 4 quadrants], root (when both)
    parent: list[int] = []
    domain: list[int] = []
    coord: list[tuple[int, int]] = []
    token_parent = np.zeros(n, dtype=np.int64)
    token_coord = np.zeros((n, 2), dtype=np.int64)
    node = n  # next internal id
    children_of_root: list[int] = []
    if text is not None:
        tokens.append(text.tokens)
        positions.append(np.arange(n_text, dtype=np.int64))
        modality.append(np.ones(n_text, dtype=np.int64))
        features.append(np.zeros((n_text, _PATCH * _PATCH), dtype=np.float32))
        token_parent[:n_text] = node
        token_coord[:n_text, 0] = np.arange(n_text)
        children_of_root.append(node)
        parent.append(-1)
        domain.append(_SEQUENCE)
        coord.append((0, 0))
        node += 1
    if patches is not None:
        tokens.append(np.zeros(n_image, dtype=np.int64))
        positions.append(text_positions + np.arange(n_image, dtype=np.int64))
        modality.append(np.full(n_image, 2, dtype=np.int64))
        features.append(patches)
        image = node
        children_of_root.append(image)
        parent.append(-1)
        domain.append(_GRID)
        coord.append((1, 0))
        node += 1
        for q in range(4):  # quadrants, row-major in a 2x2 grid
            parent.append(image)
            domain.append(_GRID)
            coord.append((q // 2, q % 2))
        rows, cols = np.divmod(np.arange(n_image), _PATCHES)
        quadrant = (rows // 2) * 2 + cols // 2
        token_parent[n_text:] = node + quadrant
        token_coord[n_text:] = np.stack([rows % 2, cols % 2], axis=1)
        node += 4
    internal_parent = np.asarray(parent, dtype=np.int64)
    if len(children_of_root) == 2:
        internal_parent[[c - n for c in children_of_root]] = node
        internal_parent = np.append(internal_parent, -1)
        domain.append(_SET)
        coord.append((0, 0))
    return SampleTree(
        tokens=np.concatenate(tokens),
        positions=np.concatenate(positions),
        modality=np.concatenate(modality),
        parent=np.concatenate([token_parent, internal_parent]),
        domain=np.concatenate([np.zeros(n, dtype=np.int64), np.asarray(domain, dtype=np.int64)]),
        coord=np.concatenate([token_coord, np.asarray(coord, dtype=np.int64).reshape(-1, 2)]),
        label=int(label),
        features=np.concatenate(features),
    )


def _pairs(
    texts: Sequence[SampleTree],
    images: FloatArray,
    digits: IntArray,
    count: int,
    seed: int,
    modalities: Sequence[str],
    text_positions: int,
    solo_fraction: float = 0.0,
) -> tuple[list[SampleTree], IntArray]:
    """``count`` samples and their ``[count, 4]`` factors (sentiment, parity, label, kind).

    ``kind`` is ``0`` for a pair, ``1`` for a text-only and ``2`` for an image-only sample (a fraction
    ``solo_fraction`` of the samples, half each); an absent modality counts as negative / even. Samples with
    nothing of ``modalities`` to show are left out.
    """
    rng = np.random.default_rng(seed)
    sentiment = rng.integers(0, 2, count)
    parity = rng.integers(0, 2, count)
    u = rng.random(count)
    kind = np.where(u < solo_fraction / 2, 1, np.where(u < solo_fraction, 2, 0))
    by_sentiment = [np.flatnonzero(np.asarray([t.label for t in texts]) == s) for s in (0, 1)]
    by_parity = [np.flatnonzero(digits % 2 == p) for p in (0, 1)]
    text_index = np.asarray([rng.choice(by_sentiment[s]) for s in sentiment])
    image_index = np.asarray([rng.choice(by_parity[p]) for p in parity])
    has_text, has_image = kind != 2, kind != 1
    label = np.asarray(xor_label(sentiment * has_text, parity * has_image))
    show_text, show_image = has_text & ("text" in modalities), has_image & ("image" in modalities)
    keep = np.flatnonzero(show_text | show_image)
    samples = [
        pair_sample(
            texts[text_index[j]] if show_text[j] else None,
            digit_patches(images[image_index[j]]) if show_image[j] else None,
            int(label[j]),
            text_positions=text_positions,
        )
        for j in keep
    ]
    return samples, np.stack([sentiment, parity, label, kind], axis=1)[keep]


class PhraseDigitPairs(TreeClassificationData):
    """SST-2 sentences paired with digit images, label = positive XOR odd (module docstring; **constructed**).

    Args:
        root: data folder holding ``sst/`` (see :class:`~geoattn.train.tasks.hsa_text.SSTTrees`) (default: ``None``).
        modalities: ``["text", "image"]`` (both), ``["text"]`` or ``["image"]`` (default: both).
        train_pairs, val_pairs, test_pairs: samples per split (default: ``20000``, ``2000``, ``4000``).
        solo_fraction: fraction of the *training* samples that show one modality only, half of them text
            (label: the sentiment) and half image (label: the parity) -- the rule with the absent modality
            counted as negative / even. They give each modality's encoder a direct signal, without which
            the XOR of two factors learnt from scratch stays at chance for hundreds of steps (measured:
            50% after 600-939 steps). Validation and test samples are all pairs (default: ``0.3``).
        pair_seed: seed of the pairing (default: ``0``).
        digit_seed: seed of the digits' split (default: ``0``).
        vocab_size: the vocabulary's size at most (default: ``20000``).
        max_text_tokens: position ids reserved for the text; the image's follow (default: ``64``).
        limit: keep the first ``limit`` SST trees of each split (smoke runs) (default: ``None``).
        **batching: as for :class:`~geoattn.train.tasks.hsa_text.SSTTrees`.
    """

    num_features = _PATCH * _PATCH
    num_modalities = 2

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        modalities: Sequence[str] = MODALITIES,
        train_pairs: int = 20000,
        val_pairs: int = 2000,
        test_pairs: int = 4000,
        solo_fraction: float = 0.3,
        pair_seed: int = 0,
        digit_seed: int = 0,
        vocab_size: int = 20000,
        max_text_tokens: int = 64,
        limit: int | None = None,
        **batching: Unpack[BatchOptions],
    ) -> None:
        super().__init__(**batching)
        name = type(self).__name__
        chosen = list(modalities)
        if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= set(MODALITIES):
            raise ValueError(
                f"{name}: modalities must be a non-empty subset of {list(MODALITIES)}, got {chosen!r}"
            )
        if min(train_pairs, val_pairs, test_pairs) < 1:
            raise ValueError(f"{name}: train_pairs, val_pairs and test_pairs must be >= 1")
        if not 0.0 <= solo_fraction < 1.0:
            raise ValueError(f"{name}: solo_fraction must be in [0, 1), got {solo_fraction}")
        train_t, dev_t, test_t, used = sst_samples(_root(root), vocab_size, 1, limit)
        longest = max(s.num_tokens for split in (train_t, dev_t, test_t) for s in split)
        if longest > max_text_tokens:
            raise ValueError(f"{name}: a sentence has {longest} tokens but max_text_tokens={max_text_tokens}")
        digits = load_digit_splits(digit_seed)
        self.modalities = chosen
        self.factors: dict[str, IntArray] = {}
        splits = {}
        for offset, (split, texts, count) in enumerate(
            (("train", train_t, train_pairs), ("val", dev_t, val_pairs), ("test", test_t, test_pairs))
        ):
            images, target = digits[split]
            solo = solo_fraction if split == "train" else 0.0
            splits[split], self.factors[split] = _pairs(
                texts, images, target, count, pair_seed * 3 + offset, chosen, max_text_tokens, solo
            )
        self._set_samples(
            splits["train"],
            splits["val"],
            splits["test"],
            vocab_size=vocab_size,
            vocab_used=used,
            max_positions=max_text_tokens + _PATCHES * _PATCHES,
        )
