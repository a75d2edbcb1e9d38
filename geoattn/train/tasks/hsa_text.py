r"""Text classification data for :class:`~geoattn.train.tasks.hsa_classification.HsaClassifier`: SST and IMDB.

- :class:`SSTTrees`: the Stanford Sentiment Treebank with **its own constituency parse trees** as the
  hierarchy (binary trees; every internal node a ``sequence`` of its two children). Sentence-level **SST-2**:
  root labels 0-1 negative, 3-4 positive, neutral (2) dropped (train 6,920 / dev 872 / test 1,821). The
  official dev split validates and the test split is scored at the end.
- :class:`IMDBDocuments`: IMDB reviews as **document -> sentences -> words** (``<br />`` tags and sentence-final
  punctuation end sentences; :func:`~geoattn.datasets.text_trees.split_sentences`), truncated to
  ``max_tokens``. A seeded validation split is carved from the official training set; the official test set
  is scored at the end.

Both build the vocabulary from their training split only, read from a local data root (nothing is downloaded)
and tokenise once per process (the encoded samples are cached in memory by their arguments, so several runs in
one process share them).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from typing import Unpack

import numpy as np

from geoattn.datasets.text_trees import (
    Vocabulary,
    read_imdb,
    read_sst,
    split_sentences,
    sst_binary_label,
    tokenize,
)
from geoattn.hierarchy import DOMAINS

from .hsa_classification import BatchOptions, IntArray, SampleTree, TreeClassificationData

__all__ = ["IMDBDocuments", "SSTTrees", "document_tree", "sst_samples"]

_SEQUENCE = DOMAINS.index("sequence")
DEFAULT_ROOT = "../shared/data"


def _root(root: str | os.PathLike[str] | None) -> str:
    return os.fspath(root) if root is not None else os.environ.get("GEOATTN_TEXT_DATA", DEFAULT_ROOT)


def _check_vocab(owner: str, vocab_size: int, min_freq: int) -> None:
    if vocab_size < 3 or min_freq < 1:
        raise ValueError(
            f"{owner}: vocab_size must be >= 3 and min_freq >= 1, got {vocab_size} and {min_freq}"
        )


# ---------------------------------------------------------------------------------------------- SST
@functools.lru_cache(maxsize=4)
def sst_samples(
    root: str, vocab_size: int, min_freq: int = 1, limit: int | None = None
) -> tuple[tuple[SampleTree, ...], tuple[SampleTree, ...], tuple[SampleTree, ...], int]:
    """SST-2 samples ``(train, dev, test, vocabulary size)`` with their parse trees (cached per arguments).

    ``limit`` keeps the first ``limit`` trees of each file (before neutral sentences are dropped).
    """
    splits = {name: read_sst(root, name, limit) for name in ("train", "dev", "test")}
    vocab = Vocabulary.build((t.tokens for t in splits["train"]), vocab_size, min_freq)
    out: list[tuple[SampleTree, ...]] = []
    for trees in splits.values():
        samples = []
        for tree in trees:
            label = sst_binary_label(tree.label)
            if label is None:
                continue
            n = len(tree.tokens)
            coord = np.stack([tree.position, np.zeros_like(tree.position)], axis=1)
            samples.append(
                SampleTree(
                    tokens=vocab.encode(tree.tokens),
                    positions=np.arange(n, dtype=np.int64),
                    modality=np.ones(n, dtype=np.int64),
                    parent=tree.parent,
                    domain=np.full(tree.num_nodes, _SEQUENCE, dtype=np.int64),
                    coord=coord,
                    label=label,
                )
            )
        out.append(tuple(samples))
    return out[0], out[1], out[2], len(vocab)


class SSTTrees(TreeClassificationData):
    """SST-2 sentences with their constituency trees (module docstring).

    Args:
        root: data folder holding ``sst/{train,dev,test}.txt``; ``None``: ``$GEOATTN_TEXT_DATA``, else
            ``../shared/data`` (relative to the working directory) (default: ``None``).
        vocab_size: the vocabulary's size at most (the training tokens by frequency, plus padding and
            unknown); the model's word table has this many rows (default: ``20000``).
        min_freq: training tokens seen fewer times are unknown (default: ``1``).
        max_positions: position ids available (the longest SST sentence has 56 tokens) (default: ``64``).
        limit: keep the first ``limit`` trees of each split (smoke runs) (default: ``None``, all).
        **batching: ``batch_size``, ``eval_batch_size``, ``batch_seed`` of
            :class:`~geoattn.train.tasks.hsa_classification.TreeClassificationData`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        vocab_size: int = 20000,
        min_freq: int = 1,
        max_positions: int = 64,
        limit: int | None = None,
        **batching: Unpack[BatchOptions],
    ) -> None:
        super().__init__(**batching)
        _check_vocab(type(self).__name__, vocab_size, min_freq)
        train, dev, test, used = sst_samples(_root(root), vocab_size, min_freq, limit)
        longest = max(s.num_tokens for split in (train, dev, test) for s in split)
        if longest > max_positions:
            raise ValueError(
                f"SSTTrees: a sentence has {longest} tokens but max_positions={max_positions}; raise it"
            )
        self._set_samples(
            train, dev, test, vocab_size=vocab_size, vocab_used=used, max_positions=max_positions
        )


# ---------------------------------------------------------------------------------------------- IMDB
def document_tree(sentences: list[IntArray], label: int) -> SampleTree:
    """Document -> sentences -> words: tokens, then one node per sentence, then the root (all ``sequence``)."""
    lengths = np.asarray([len(s) for s in sentences], dtype=np.int64)
    n, count = int(lengths.sum()), len(sentences)
    sentence_of = np.repeat(np.arange(count), lengths)
    parent = np.concatenate([n + sentence_of, np.full(count, n + count), [-1]]).astype(np.int64)
    coord = np.zeros((n + count + 1, 2), dtype=np.int64)
    coord[:n, 0] = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    coord[n : n + count, 0] = np.arange(count)
    return SampleTree(
        tokens=np.concatenate(sentences).astype(np.int64),
        positions=np.arange(n, dtype=np.int64),
        modality=np.ones(n, dtype=np.int64),
        parent=parent,
        domain=np.full(n + count + 1, _SEQUENCE, dtype=np.int64),
        coord=coord,
        label=int(label),
    )


def _truncate(sentences: list[list[str]], max_tokens: int) -> list[list[str]]:
    kept: list[list[str]] = []
    room = max_tokens
    for sentence in sentences:
        if room <= 0:
            break
        if sentence:
            kept.append(sentence[:room])
            room -= len(kept[-1])
    return kept or [["<empty>"]]


@functools.lru_cache(maxsize=2)
def imdb_samples(
    root: str,
    vocab_size: int,
    min_freq: int,
    max_tokens: int,
    val_size: int,
    split_seed: int,
    limit: int | None = None,
) -> tuple[tuple[SampleTree, ...], tuple[SampleTree, ...], tuple[SampleTree, ...], int]:
    """IMDB samples ``(train, validation, test, vocabulary size)`` (cached per arguments; module docstring).

    ``limit`` keeps the first ``limit`` reviews of each file (they are shuffled, so prefixes are balanced).
    """
    parsed = {}
    for split in ("train", "test"):
        texts, labels = read_imdb(root, split)
        texts, labels = texts[:limit], labels[:limit]
        parsed[split] = ([[tokenize(s) for s in split_sentences(t)] for t in texts], labels)
    docs, labels = parsed["train"]
    if not 0 < val_size < len(docs):
        raise ValueError(f"IMDBDocuments: val_size must be in 1..{len(docs) - 1}, got {val_size}")
    order = np.random.default_rng(split_seed).permutation(len(docs))
    val_index, train_index = np.sort(order[:val_size]), np.sort(order[val_size:])
    counts: Counter[str] = Counter()
    for i in train_index:
        for sentence in docs[i]:
            counts.update(sentence)
    vocab = Vocabulary(counts, vocab_size, min_freq)

    def encode(doc: list[list[str]], label: int) -> SampleTree:
        return document_tree([vocab.encode(s) for s in _truncate(doc, max_tokens)], label)

    train = tuple(encode(docs[i], labels[i]) for i in train_index)
    val = tuple(encode(docs[i], labels[i]) for i in val_index)
    test_docs, test_labels = parsed["test"]
    test = tuple(encode(d, y) for d, y in zip(test_docs, test_labels, strict=True))
    return train, val, test, len(vocab)


class IMDBDocuments(TreeClassificationData):
    """IMDB reviews as document -> sentences -> words (module docstring).

    Args:
        root: data folder holding ``imdb/{train,test}.jsonl.xz``; ``None``: ``$GEOATTN_TEXT_DATA``, else
            ``../shared/data`` (default: ``None``).
        vocab_size: the vocabulary's size at most (default: ``30000``).
        min_freq: training tokens seen fewer times are unknown (default: ``2``).
        max_tokens: tokens kept per review (whole sentences first, the last one cut) (default: ``400``).
        val_size: training reviews held out for validation (default: ``2500``).
        split_seed: seed of that split (default: ``0``).
        limit: keep the first ``limit`` reviews of each file (smoke runs) (default: ``None``, all).
        **batching: as for :class:`SSTTrees`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        vocab_size: int = 30000,
        min_freq: int = 2,
        max_tokens: int = 400,
        val_size: int = 2500,
        split_seed: int = 0,
        limit: int | None = None,
        **batching: Unpack[BatchOptions],
    ) -> None:
        super().__init__(**batching)
        _check_vocab(type(self).__name__, vocab_size, min_freq)
        if max_tokens < 1:
            raise ValueError(f"IMDBDocuments: max_tokens must be >= 1, got {max_tokens}")
        train, val, test, used = imdb_samples(
            _root(root), vocab_size, min_freq, max_tokens, val_size, split_seed, limit
        )
        self._set_samples(train, val, test, vocab_size=vocab_size, vocab_used=used, max_positions=max_tokens)
