"""SST trees and IMDB text (``geoattn.datasets.text_trees``): parse trees become hierarchies that match them,
tokens keep no-break spaces, reviews split at ``<br />`` and sentence ends, vocabularies count training tokens."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from geoattn.datasets.text_trees import (
    Vocabulary,
    parse_ptb_tree,
    read_imdb,
    read_sst,
    split_sentences,
    sst_binary_label,
    tokenize,
)

DATA = Path(os.environ.get("GEOATTN_TEXT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
needs_sst = pytest.mark.skipif(not (DATA / "sst").is_dir(), reason=f"SST not found under {DATA}")
needs_imdb = pytest.mark.skipif(not (DATA / "imdb").is_dir(), reason=f"IMDB not found under {DATA}")


def _leaves_in_order(tree: nx.DiGraph, root: int) -> list[int]:
    """Token ids by a depth-first walk that visits children by their stored position."""
    children = sorted(tree.successors(root), key=lambda c: tree.nodes[c].get("coord", (0, 0)))
    if not children:
        return [root]
    return [leaf for c in children for leaf in _leaves_in_order(tree, c)]


def test_a_hand_made_tree_becomes_the_same_hierarchy() -> None:
    tree = parse_ptb_tree("(3 (2 (2 The) (2 Rock)) (4 (3 is) (2 (2 great) (2 .))))")
    assert tree.tokens == ("The", "Rock", "is", "great", ".")
    assert tree.label == 3 and tree.num_nodes == 5 + 4  # strictly binary: n - 1 internal nodes
    # pre-order internal nodes: 5 root, 6 (The Rock), 7 (is (great .)), 8 (great .)
    assert tree.parent.tolist() == [6, 6, 7, 8, 8, -1, 5, 5, 7]
    assert tree.position.tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 1]
    assert tree.node_label.tolist() == [2, 2, 3, 2, 2, 3, 2, 4, 2]
    h = tree.hierarchy()
    assert (h.num_tokens, h.num_nodes, h.num_trees, h.depth) == (5, 9, 1, 3)
    # the left subtree (internal node 6) has a higher id than the token "is": order comes from coords
    assert h.coord[:, 0].tolist() == tree.position.tolist()
    assert h.leaf_count.tolist()[5:] == [5, 2, 3, 2]


def test_no_break_spaces_stay_inside_tokens() -> None:
    tree = parse_ptb_tree("(3 (2 Gets) (3 (2 8\u00a01\\/2) (2 stars)))")
    assert tree.tokens == ("Gets", "8\u00a01\\/2", "stars")


@pytest.mark.parametrize(
    "line", ["(3 (2 a) (2 b)", "(3 (2 a) (2 b)))", "(x (2 a) (2 b))", "(3 (2 a) (2 b)) (2 c)", "(3 )"]
)
def test_malformed_trees_are_rejected(line: str) -> None:
    with pytest.raises(ValueError, match="parse_ptb_tree"):
        parse_ptb_tree(line)


@needs_sst
def test_sst_trees_match_their_lines() -> None:
    """Leaf order, node count and depth-first order of the hierarchy against the raw bracket text."""
    lines = (DATA / "sst" / "dev.txt").read_text(encoding="utf-8").splitlines()[:40]
    trees = read_sst(DATA, "dev", limit=40)
    assert len(trees) == 40
    for line, tree in zip(lines, trees, strict=True):
        words = re.findall(r"\(\d ([^ ()]+)\)", line)
        assert list(tree.tokens) == words
        assert tree.num_nodes == line.count("(")  # pre-terminals merged into their tokens
        assert tree.label == int(line[1])
        graph = tree.hierarchy().to_networkx()
        root = next(n for n in graph if graph.in_degree(n) == 0)
        assert _leaves_in_order(graph, root) == list(range(len(words)))


@needs_sst
def test_sst_counts_and_binary_labels() -> None:
    train = read_sst(DATA, "train")
    assert len(train) == 8544 and sum(len(t.tokens) for t in train) == 163563
    assert sum(sst_binary_label(t.label) is not None for t in train) == 6920
    assert [sst_binary_label(v) for v in range(5)] == [0, 0, None, 1, 1]


def test_imdb_sentences_break_at_br_tags_and_sentence_ends() -> None:
    text = "Great film.<br /><br />Bad ending! Really? yes<br/>and 3.5 stars...  the end"
    assert split_sentences(text) == [
        "Great film.",
        "Bad ending!",
        "Really?",
        "yes",
        "and 3.5 stars...",
        "the end",
    ]
    assert tokenize("Don't stop, OK... Café!") == ["don't", "stop", ",", "ok", ".", ".", ".", "café", "!"]


@needs_imdb
def test_imdb_reviews_keep_their_labels_and_lose_their_tags() -> None:
    texts, labels = read_imdb(DATA, "test")
    assert len(texts) == 25000 and int(labels.sum()) == 12500
    with_tags = next(t for t in texts if "<br />" in t)
    sentences = split_sentences(with_tags)
    assert len(sentences) >= 2 and not any("<br" in s for s in sentences)


def test_vocabulary_orders_by_frequency_and_maps_unknowns() -> None:
    vocab = Vocabulary(Counter({"a": 5, "b": 3, "c": 1, "d": 3}), max_size=5, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "d"] and len(vocab) == 5
    assert vocab.encode(["a", "c", "d", "zzz"]).tolist() == [2, 1, 4, 1]
    assert np.asarray(vocab.encode([])).shape == (0,)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary(Counter(), max_size=1)
