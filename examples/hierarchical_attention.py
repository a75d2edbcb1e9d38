"""Hierarchical self-attention (HSA) on a toy nested signal: compare with flat softmax and count the cost saved.

Two demonstrations, each with the same module (``HierarchicalSelfAttention``) so that the only difference is
the hierarchy it is given:

1. a **document**: tokens grouped into sentences, sentences into paragraphs (a 2-level hierarchy over a
   toy sequence whose token embeddings share a per-sentence topic). On the flat tree HSA *is* softmax
   attention; on the document tree each token attends to its own sentence token by token and to other
   sentences and paragraphs only through their means. The script prints how far the outputs are apart,
   the same distance for two baselines (softmax restricted to the sentence, uniform attention), the mean
   KL divergence between the HSA and softmax rows, that the DP equals the dense closed form, and how many
   attention logits the DP computes instead of ``N^2``;
2. a **multimodal** sample: a text modality (sequence of sentences) and an image modality (a grid of
   patch windows) under one root, with learnable sibling positional terms, trained for a few steps.

Usage::

    python examples/hierarchical_attention.py            # N = 4096 tokens, timing of DP vs dense softmax
    python examples/hierarchical_attention.py --smoke    # tiny sizes, a few seconds on a CPU (run by the tests)
"""

from __future__ import annotations

import argparse
import time

import torch

from geoattn.hierarchy import Hierarchy, Node
from geoattn.nn.hierarchical_attention import (
    HierarchicalSelfAttention,
    hierarchical_attention,
    hsa_dense_reference,
)


def document(paragraphs: int, sentences: int, tokens: int) -> Hierarchy:
    """``paragraphs`` x ``sentences`` x ``tokens``: a regular 2-level hierarchy (plus the root)."""
    return Hierarchy.regular([paragraphs, sentences, tokens])


def toy_embeddings(num_sentences: int, tokens: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Token embeddings = a per-sentence topic + noise: the hierarchy matches the data."""
    topics = torch.randn(num_sentences, 1, dim, generator=generator)
    noise = 0.5 * torch.randn(num_sentences, tokens, dim, generator=generator)
    return (topics + noise).reshape(1, num_sentences * tokens, dim)


@torch.no_grad()
def compare_with_softmax(args: argparse.Namespace) -> None:
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    p, s, t = args.shape
    n = p * s * t
    tree = document(p, s, t)
    flat = Hierarchy.from_nested(list(range(n)))
    x = toy_embeddings(p * s, t, args.dim, gen)
    attention = HierarchicalSelfAttention(args.dim, args.heads).eval()
    # Tie keys to queries so that logits measure similarity (an untrained model's random bilinear form
    # would make tokens attend to arbitrary sentences).
    attention.k_proj.load_state_dict(attention.q_proj.state_dict())
    print(
        f"document: {p} paragraphs x {s} sentences x {t} tokens = {n} tokens, dim {args.dim}, {args.heads} heads"
    )
    # The module on the flat tree is multi-head softmax attention; on the document tree it is HSA.
    y_tree, y_flat = attention(x, tree), attention(x, flat)
    rel = float((y_tree - y_flat).norm() / y_flat.norm())
    print(f"module output, HSA vs flat softmax: relative difference {rel:.4f}")

    q, k, v, _, _ = attention._heads(x, tree)  # the per-head projections the module attends with
    out_dp = hierarchical_attention(q, k, v, tree)
    logits = torch.einsum("ihd,jhd->hij", q, k) / q.shape[-1] ** 0.5
    soft = torch.softmax(logits, dim=-1)
    out_soft = torch.einsum("hij,jhd->ihd", soft, v)
    sentence = torch.arange(n) // t
    local = torch.softmax(logits.masked_fill(sentence[:, None] != sentence[None, :], -torch.inf), dim=-1)
    baselines = {
        "HSA (this hierarchy)": out_dp,
        "softmax within the sentence only": torch.einsum("hij,jhd->ihd", local, v),
        "uniform attention (mean value)": v.mean(0, keepdim=True).expand_as(v),
    }
    print("attention output vs flat softmax, relative difference:")
    for name, out in baselines.items():
        print(f"  {name:<34} {float((out - out_soft).norm() / out_soft.norm()):.4f}")
    if n <= 1024:  # the dense matrices are N x N
        out_dense, theta = hsa_dense_reference(q, k, v, tree)
        kl = (theta * (theta.clamp_min(1e-30).log() - soft.log())).sum(-1).mean()
        print(f"mean row KL(HSA || softmax): {float(kl):.4f} nats")
        print(f"rows of the HSA matrix sum to 1: max error {float((theta.sum(-1) - 1).abs().max()):.2e}")
        print(f"DP == dense closed form: max error {float((out_dp - out_dense).abs().max()):.2e}")
    hierarchical = tree.plan().num_padded_pairs + n  # family logits + one diagonal energy per token
    print(
        f"attention logits: flat {n * n}, hierarchical {hierarchical} "
        f"(saved {100 * (1 - hierarchical / (n * n)):.1f}%)"
    )
    if not args.smoke:
        qb, kb, vb = (z.transpose(0, 1)[None] for z in (q, k, v))
        for name, fn in [
            ("HSA dynamic programme", lambda: hierarchical_attention(q, k, v, tree)),
            ("dense softmax (SDPA)", lambda: torch.nn.functional.scaled_dot_product_attention(qb, kb, vb)),
        ]:
            fn()
            start = time.perf_counter()
            for _ in range(5):
                fn()
            print(
                f"time {name}: {(time.perf_counter() - start) / 5 * 1e3:.1f} ms (CPU, {torch.get_num_threads()} threads)"
            )


def multimodal(args: argparse.Namespace) -> None:
    """Text (a sequence of sentences) and an image (a grid of 2x2 patch windows) under one ``set`` root."""
    gen = torch.Generator().manual_seed(args.seed + 1)
    sentences, words, windows = (2, 4, 2) if args.smoke else (8, 16, 8)
    text_tokens = sentences * words
    text = Node(
        [list(range(i * words, (i + 1) * words)) for i in range(sentences)], domain="sequence", label="text"
    )
    patches = text_tokens
    image_windows = []
    for _ in range(windows * windows):
        image_windows.append(Node(list(range(patches, patches + 4)), domain="grid", grid_shape=(2, 2)))
        patches += 4
    image = Node(image_windows, domain="grid", grid_shape=(windows, windows), label="image")
    tree = Hierarchy.from_nested(Node([text, image], domain="set"))
    n = tree.num_tokens
    target = torch.randn(1, n, args.dim, generator=gen)
    x = torch.randn(1, n, args.dim, generator=gen)
    model = HierarchicalSelfAttention(args.dim, args.heads, positional=True, max_offset=4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3 if args.smoke else 50):
        loss = (model(x, tree) - target).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    print(
        f"multimodal: {text_tokens} text tokens + {n - text_tokens} image patches, depth {tree.depth}; "
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a few seconds on a CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("P", "S", "T"),
        help="paragraphs, sentences, tokens",
    )
    args = parser.parse_args(argv)
    if args.shape is None:
        args.shape = (4, 4, 8) if args.smoke else (16, 16, 16)
    compare_with_softmax(args)
    multimodal(args)


if __name__ == "__main__":
    main()
