"""Curvature-Adaptive attention (CAT) on a toy sequence task and on a small graph; prints routing weights.

CAT (Lin, Ojha, Bai 2025, arXiv:2510.01634) routes every token across a Euclidean, a hyperbolic and a
spherical attention branch. This script trains

1. a ``CATEncoder`` on sequences: "does the first token occur again later in the sequence?", and
2. two ``CurvatureAdaptiveConv`` layers on a graph made of a binary tree and a ring: "is this node in the
   tree or in the ring?",

and prints the loss, the accuracy, the learned curvatures and the mean routing weights per geometry::

    python examples/cat_attention.py              # under a minute on a CPU
    python examples/cat_attention.py --seed 1 --steps 300
    python examples/cat_attention.py --smoke      # a few steps at tiny sizes (run by the tests)
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn import functional as F

from geoattn.nn import BRANCHES, CATEncoder, CATEncoderLayer, CurvatureAdaptiveConv, routing_regularizer

REGULARISER_WEIGHT = 0.01


class SequenceClassifier(nn.Module):
    """Token + position embeddings, a CAT encoder, a linear head on the first position."""

    def __init__(self, vocab: int, length: int, d_model: int, heads: int, layers: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(length, d_model)
        layer = CATEncoderLayer(d_model, heads, dropout=0.0)
        self.encoder = CATEncoder(layer, layers, norm=nn.LayerNorm(d_model))
        self.encoder.reset_parameters()  # independent layers (the constructor copies one layer)
        self.head = nn.Linear(d_model, 2)

    def forward(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(seq.shape[1], device=seq.device)
        h, routing = self.encoder(self.tokens(seq) + self.positions(positions), return_routing=True)
        return self.head(h[:, 0]), routing


def sequence_batch(
    n: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    seq = torch.randint(0, vocab, (n, length), generator=generator)
    label = (seq[:, 1:] == seq[:, :1]).any(dim=1).long()
    return seq, label


def train_sequences(args: argparse.Namespace, generator: torch.Generator) -> None:
    vocab, length = (6, 6) if args.smoke else (12, 10)
    model = SequenceClassifier(vocab, length, d_model=16 if args.smoke else 24, heads=2, layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = args.steps or (5 if args.smoke else 200)
    print(f"== sequences: does the first token recur?  (vocab {vocab}, length {length}, {steps} steps)")
    for step in range(steps):
        seq, label = sequence_batch(32 if args.smoke else 64, length, vocab, generator)
        logits, routing = model(seq)
        loss = F.cross_entropy(logits, label) + REGULARISER_WEIGHT * routing_regularizer(routing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0 or step == steps - 1 or step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        seq, label = sequence_batch(512, length, vocab, generator)
        logits, routing = model(seq)
    accuracy = (logits.argmax(-1) == label).float().mean().item()
    print(
        f"held-out accuracy {accuracy:.3f} (majority class {max(label.float().mean().item(), 1 - label.float().mean().item()):.3f})"
    )
    print(f"{'routing (mean over tokens)':<28}" + "".join(f"{b:>12}" for b in BRANCHES))
    for i, layer_routing in enumerate(routing):
        print(
            f"{'layer ' + str(i):<28}"
            + "".join(f"{w:>12.3f}" for w in layer_routing.mean(dim=(0, 1)).tolist())
        )
    for i, layer in enumerate(model.encoder.layers):
        k = layer.self_attn.curvature().detach()  # [3, H]
        hyperbolic, spherical = ([round(v, 3) for v in row.tolist()] for row in k[1:])
        print(f"layer {i} curvature per head: hyperbolic {hyperbolic}, spherical {spherical}")


def tree_and_ring(depth: int, ring: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A complete binary tree of the given depth plus a disjoint ring; labels 0 (tree) and 1 (ring)."""
    tree_nodes = 2 ** (depth + 1) - 1
    parents = torch.arange(1, tree_nodes)
    tree_edges = torch.stack([(parents - 1) // 2, parents])
    ring_nodes = torch.arange(ring) + tree_nodes
    ring_edges = torch.stack([ring_nodes, ring_nodes.roll(-1)])
    edges = torch.cat([tree_edges, ring_edges], dim=1)
    edge_index = torch.cat([edges, edges.flip(0)], dim=1)  # undirected
    label = torch.cat([torch.zeros(tree_nodes), torch.ones(ring)]).long()
    return edge_index, label


class GraphClassifier(nn.Module):
    def __init__(self, in_channels: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.conv1 = CurvatureAdaptiveConv(in_channels, hidden, heads)
        self.conv2 = CurvatureAdaptiveConv(hidden * heads, 2, heads=1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, rho1 = self.conv1(x, edge_index, return_routing=True)
        out, rho2 = self.conv2(F.elu(h), edge_index, return_routing=True)
        return out, [rho1, rho2]


def train_graph(args: argparse.Namespace, generator: torch.Generator) -> None:
    edge_index, label = tree_and_ring(depth=2 if args.smoke else 4, ring=6 if args.smoke else 24)
    n = label.numel()
    degree = torch.zeros(n).index_add(0, edge_index[1], torch.ones(edge_index.shape[1]))
    x = torch.cat([torch.randn(n, 7, generator=generator) * 0.1, degree[:, None] / degree.max()], dim=1)
    model = GraphClassifier(8, 8, heads=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    steps = args.steps or (5 if args.smoke else 150)
    print(f"\n== graph: tree or ring?  ({n} nodes, {edge_index.shape[1]} directed edges, {steps} steps)")
    for step in range(steps):
        logits, routings = model(x, edge_index)
        loss = F.cross_entropy(logits, label) + REGULARISER_WEIGHT * sum(
            routing_regularizer(r) for r in routings
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0 or step == steps - 1 or step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        logits, routings = model(x, edge_index)
    print(f"accuracy {(logits.argmax(-1) == label).float().mean().item():.3f}")
    print(f"{'routing (mean over nodes)':<28}" + "".join(f"{b:>12}" for b in BRANCHES))
    for i, rho in enumerate(routings):
        for name, group in (("tree", label == 0), ("ring", label == 1)):
            print(
                f"{f'conv{i + 1} {name} nodes':<28}"
                + "".join(f"{w:>12.3f}" for w in rho[group].mean(0).tolist())
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps per task (default 200/150)")
    parser.add_argument("--smoke", action="store_true", help="a few steps at tiny sizes")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    print(f"seed {args.seed}")
    train_sequences(args, generator)
    train_graph(args, generator)


if __name__ == "__main__":
    main()
