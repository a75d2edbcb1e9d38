r"""Text corpora with their own hierarchies, read offline: SST constituency trees and IMDB reviews.

- **SST** (Socher et al. 2013, the PTB-style ``trainDevTestTrees_PTB`` files): one labelled binary parse tree
  per line, ``(3 (2 (2 The) (2 Rock)) (4 ...))``. :func:`parse_ptb_tree` reads a line into a
  :class:`LabelledTree` whose leaves are the tokens and whose internal nodes are the constituents; the
  pre-terminal ``(2 Rock)`` is merged into its token (the token keeps the pre-terminal's label), so a strictly
  binary sentence of :math:`n` tokens has :math:`n - 1` internal nodes. Tokens are split on ASCII space only
  (:data:`PTB_TOKEN`): three SST tokens hold a no-break space (``8\u00a01\/2``), which ``str.split`` and NLTK's
  default leaf pattern would cut in two.
- **IMDB** (Maas et al. 2011, the ``{train,test}.jsonl.xz`` files): reviews keep the HTML line breaks
  ``<br />`` of the original; :func:`split_sentences` treats them as sentence breaks, as it does sentence-final
  punctuation, and :func:`tokenize` lower-cases and splits words from punctuation.
- :class:`Vocabulary`: token ids by training frequency, with padding ``0`` and unknown ``1``.

Nothing here downloads: the readers take a data root (``../shared/data`` in this repository's layout, the
folder holding ``sst/`` and ``imdb/``).
"""

from __future__ import annotations

import json
import lzma
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from geoattn.hierarchy import Hierarchy

__all__ = [
    "PTB_TOKEN",
    "LabelledTree",
    "Vocabulary",
    "parse_ptb_tree",
    "read_imdb",
    "read_sst",
    "split_sentences",
    "sst_binary_label",
    "tokenize",
]

IntArray = npt.NDArray[np.int64]
SstSplit = Literal["train", "dev", "test"]
ImdbSplit = Literal["train", "test"]

#: A PTB bracket or a leaf: split on ASCII space only, so tokens holding a no-break space stay whole.
PTB_TOKEN = re.compile(r"\(|\)|[^ ()]+")


@dataclass(frozen=True)
class LabelledTree:
    """A parse tree whose leaves are tokens, with a sentiment label on every node.

    Nodes ``0 .. n - 1`` are the tokens in sentence order; internal nodes follow in pre-order (node ``n`` is
    the root), the layout :class:`~geoattn.hierarchy.Hierarchy` takes.

    Attributes:
        tokens: the ``n`` tokens, left to right.
        parent: ``[num_nodes]`` parent of each node, ``-1`` for the root.
        position: ``[num_nodes]`` rank of each node among its siblings (left to right).
        node_label: ``[num_nodes]`` label of each node (a token carries its pre-terminal's label).
    """

    tokens: tuple[str, ...]
    parent: IntArray
    position: IntArray
    node_label: IntArray

    @property
    def label(self) -> int:
        """The root's (sentence) label."""
        return int(self.node_label[len(self.tokens)])

    @property
    def num_nodes(self) -> int:
        """Tokens plus internal nodes."""
        return int(self.parent.shape[0])

    def hierarchy(self) -> Hierarchy:
        """The tree as a one-tree :class:`~geoattn.hierarchy.Hierarchy` (``sequence`` nodes, children in order)."""
        coord = np.stack([self.position, np.zeros_like(self.position)], axis=1)
        return Hierarchy(self.parent, num_tokens=len(self.tokens), coord=coord)


def parse_ptb_tree(line: str) -> LabelledTree:
    """Parse one PTB-style labelled tree, ``(label child child ...)`` with token leaves.

    Raises:
        ValueError: unbalanced brackets, a node without a label or children, or text after the tree.
    """
    parts = PTB_TOKEN.findall(line.strip())
    tokens: list[str] = []
    token_parent: list[int] = []  # internal index of each token's parent (pre-terminals merged)
    token_position: list[int] = []
    token_label: list[int] = []
    internal_parent: list[int] = []
    internal_position: list[int] = []
    internal_label: list[int] = []
    # stack of open constituents: (internal index or -1 for a pre-terminal, label, children so far)
    stack: list[list[int]] = []
    i = 0
    done = False

    def fail(why: str) -> ValueError:
        return ValueError(f"parse_ptb_tree: {why} in {line.strip()[:80]!r}")

    while i < len(parts):
        part = parts[i]
        if done:
            raise fail(f"text after the tree: {part!r}")
        if part == "(":
            if i + 1 >= len(parts) or parts[i + 1] in "()":
                raise fail("a bracket without a label")
            try:
                label = int(parts[i + 1])
            except ValueError:
                raise fail(f"label {parts[i + 1]!r} is not an integer") from None
            if i + 3 < len(parts) and parts[i + 2] not in "()" and parts[i + 3] == ")":
                # a pre-terminal (label token): merged into its token
                if not stack:
                    raise fail("a lone token is not a tree")
                top = stack[-1]
                tokens.append(parts[i + 2])
                token_parent.append(top[0])
                token_position.append(top[2])
                token_label.append(label)
                top[2] += 1
                i += 4
                continue
            index = len(internal_parent)
            if stack:
                internal_parent.append(stack[-1][0])
                internal_position.append(stack[-1][2])
                stack[-1][2] += 1
            else:
                internal_parent.append(-1)
                internal_position.append(0)
            internal_label.append(label)
            stack.append([index, label, 0])
            i += 2
        elif part == ")":
            if not stack:
                raise fail("unbalanced ')'")
            if stack[-1][2] == 0:
                raise fail("a constituent without children")
            stack.pop()
            done = not stack
            i += 1
        else:
            raise fail(f"token {part!r} outside a pre-terminal")
    if stack or not done:
        raise fail("unbalanced '('")
    n = len(tokens)
    parent = np.asarray(
        [p + n for p in token_parent] + [p + n if p >= 0 else -1 for p in internal_parent], dtype=np.int64
    )
    position = np.asarray(token_position + internal_position, dtype=np.int64)
    node_label = np.asarray(token_label + internal_label, dtype=np.int64)
    return LabelledTree(tuple(tokens), parent, position, node_label)


def _split_file(root: str | os.PathLike[str], folder: str, name: str) -> Path:
    path = Path(root) / folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: root={str(root)!r} must be the data folder holding {folder}/{name} "
            f"(in this repository ../shared/data; nothing is downloaded)"
        )
    return path


def read_sst(root: str | os.PathLike[str], split: SstSplit, limit: int | None = None) -> list[LabelledTree]:
    """The trees of ``<root>/sst/<split>.txt`` (``split``: ``"train"``, ``"dev"`` or ``"test"``), the first
    ``limit`` only when given."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"read_sst: split must be 'train', 'dev' or 'test', got {split!r}")
    trees: list[LabelledTree] = []
    with _split_file(root, "sst", f"{split}.txt").open(encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(trees) >= limit:
                break
            if line.strip():
                trees.append(parse_ptb_tree(line))
    return trees


def sst_binary_label(label: int) -> int | None:
    """SST-2 from a 5-class label: ``0, 1 -> 0`` (negative), ``3, 4 -> 1`` (positive), ``2 -> None`` (dropped)."""
    if label not in range(5):
        raise ValueError(f"sst_binary_label: label must be 0..4, got {label}")
    return None if label == 2 else int(label > 2)


# ---------------------------------------------------------------------------------------------- IMDB
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")


def split_sentences(text: str) -> list[str]:
    """Sentences of a review: ``<br />`` tags and sentence-final ``.``, ``!``, ``?`` followed by a space end
    one; empty pieces are dropped."""
    sentences: list[str] = []
    for block in _BREAK.split(text):
        sentences += [s.strip() for s in _SENTENCE_END.split(block) if s.strip()]
    return sentences


def tokenize(sentence: str) -> list[str]:
    """Lower-cased words (keeping inner apostrophes: ``don't``) and single punctuation characters."""
    return _WORD.findall(sentence.lower())


def read_imdb(root: str | os.PathLike[str], split: ImdbSplit) -> tuple[list[str], IntArray]:
    """``(texts, labels)`` of ``<root>/imdb/<split>.jsonl.xz`` (labels ``1`` positive, ``0`` negative)."""
    if split not in ("train", "test"):
        raise ValueError(f"read_imdb: split must be 'train' or 'test', got {split!r}")
    texts: list[str] = []
    labels: list[int] = []
    with lzma.open(_split_file(root, "imdb", f"{split}.jsonl.xz"), "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, np.asarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------------- vocabulary
class Vocabulary:
    """Token ids by descending training frequency (ties by first occurrence); ``0`` pads, ``1`` is unknown.

    Args:
        counts: token frequencies of the training data.
        max_size: the vocabulary's size at most, the two special ids included (``>= 2``).
        min_freq: tokens seen fewer times are unknown (default: ``1``).
    """

    PAD = 0
    UNK = 1

    def __init__(self, counts: Counter[str], max_size: int, min_freq: int = 1) -> None:
        if max_size < 2 or min_freq < 1:
            raise ValueError(
                f"Vocabulary: max_size must be >= 2 and min_freq >= 1, got {max_size} and {min_freq}"
            )
        kept = [t for t, c in counts.most_common(max_size - 2) if c >= min_freq]
        self.itos: list[str] = ["<pad>", "<unk>", *kept]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, documents: Iterable[Sequence[str]], max_size: int, min_freq: int = 1) -> Vocabulary:
        """From token sequences (one per sentence or document)."""
        counts: Counter[str] = Counter()
        for tokens in documents:
            counts.update(tokens)
        return cls(counts, max_size, min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> IntArray:
        """``[len(tokens)]`` ids (unknown tokens map to :attr:`UNK`)."""
        get = self.stoi.get
        return np.fromiter((get(t, self.UNK) for t in tokens), dtype=np.int64, count=len(tokens))
