r"""Sequence classification over nested signals: one transformer, hierarchical or flat softmax attention.

The model (:class:`HsaClassifier`) embeds every token (a word id, optional continuous features such as image
patches, a learned absolute position and a modality), runs a pre-norm
:class:`~geoattn.nn.HierarchicalTransformerEncoder` and classifies the masked mean of its outputs (or, for
several modalities, each modality's mean and their products) with a two-layer head. The only switch between
the compared models is ``attention``:

- ``"hsa"``: hierarchical self-attention over each sample's own tree (``batch["tree"]``);
- ``"flat"``: the *same* layers over the flat tree of the sample, one root above all its tokens
  (``batch["flat"]``), on which hierarchical self-attention **is** multi-head softmax attention (exactly;
  :mod:`geoattn.nn.hierarchical_attention`) with a relative-position bias clipped at ``max_offset``.

Both variants therefore have the same parameters, initialisation (for a seed) and optimiser; only the
hierarchy handed to the attention differs.

Data sources (:class:`TreeClassificationData` and its subclasses in :mod:`~geoattn.train.tasks.hsa_text` and
:mod:`~geoattn.train.tasks.hsa_multimodal`) turn samples (:class:`SampleTree`) into padded batches
(:func:`collate`) holding both hierarchies. Batches are formed once, by length inside shuffled pools
(seeded by ``batch_seed``), and kept for the whole run, so each batch's hierarchy and its level plan
(cached per device by :class:`~geoattn.hierarchy.Hierarchy`) are built once; every epoch visits the batches
in an order drawn from the trainer's generator.

:func:`run_comparison` trains the variants of an experiment for several seeds through
:func:`geoattn.train.train` (what ``geoattn-train`` runs), scores validation and test accuracy exactly,
appends one JSON line per run to ``results.jsonl`` (finished runs are skipped, interrupted ones resume from
their checkpoint) and writes ``results.md``; :func:`comparison_main` is the command line of the examples that
run one (``examples/hsa_*.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geoattn.hierarchy import DOMAINS, Hierarchy
from geoattn.nn import HierarchicalTransformerEncoder, HierarchicalTransformerEncoderLayer

__all__ = [
    "ATTENTIONS",
    "HSA_VS_FLAT",
    "SMOKE_RUN",
    "Attention",
    "BatchOptions",
    "HsaClassifier",
    "Pooling",
    "SampleTree",
    "TreeClassificationData",
    "collate",
    "comparison_main",
    "comparison_table",
    "count_parameters",
    "evaluate_accuracy",
    "run_comparison",
]

Attention = Literal["hsa", "flat"]
Pooling = Literal["mean", "modality"]
#: Accepted ``attention`` values of :class:`HsaClassifier`.
ATTENTIONS: tuple[str, ...] = get_args(Attention)
Batch = dict[str, Any]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

_SEQUENCE = DOMAINS.index("sequence")
#: The two variants every comparison has: the same model on each sample's tree, and on its flat tree.
HSA_VS_FLAT: dict[str, list[str]] = {"hsa": ["model.attention=hsa"], "flat": ["model.attention=flat"]}
#: The ``--smoke`` overrides the examples share: small batches, a tiny model, a few steps.
SMOKE_RUN: tuple[str, ...] = (
    "data.batch_size=16",
    "model.d_model=16",
    "model.nhead=2",
    "model.num_layers=1",
    "trainer.max_steps=4",
    "trainer.val_every=2",
    "trainer.ckpt_every=2",
    "trainer.log_every=2",
)


@dataclass(frozen=True)
class SampleTree:
    """One sample: its tokens, their inputs and its hierarchy (tokens first, then internal nodes).

    Attributes:
        tokens: ``[n]`` word ids (``0`` where a token has no word, e.g. an image patch).
        positions: ``[n]`` absolute position ids (into the model's position table).
        modality: ``[n]`` modality ids (``1, 2, ...``; ``0`` is padding).
        parent: ``[m]`` parent of each node (``m >= n``; ``-1`` for the root).
        domain: ``[m]`` domain code of each node (read for internal nodes).
        coord: ``[m, 2]`` position of each node inside its parent's domain.
        label: the class.
        features: ``[n, F]`` continuous inputs, or ``None`` (zeros).
    """

    tokens: IntArray
    positions: IntArray
    modality: IntArray
    parent: IntArray
    domain: IntArray
    coord: IntArray
    label: int
    features: FloatArray | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    def hierarchy(self) -> Hierarchy:
        """This sample's tree alone."""
        return Hierarchy(self.parent, num_tokens=self.num_tokens, domain=self.domain, coord=self.coord)


def _forest(samples: Sequence[SampleTree], num_tokens: int, *, flat: bool) -> Hierarchy:
    """The samples' trees (or their flat trees) side by side, sample ``b`` owning slots ``b*N .. b*N+N-1``."""
    parents: list[IntArray] = []
    domains: list[IntArray] = []
    coords: list[IntArray] = []
    total = len(samples) * num_tokens
    token_parent = np.full(total, -1, dtype=np.int64)
    token_coord = np.zeros((total, 2), dtype=np.int64)
    offset = total  # id of the next internal node
    for b, s in enumerate(samples):
        n = s.num_tokens
        slots = b * num_tokens + np.arange(n)
        if flat:
            token_parent[slots] = offset
            token_coord[slots, 0] = np.arange(n)
            parents.append(np.full(1, -1, dtype=np.int64))
            domains.append(np.full(1, _SEQUENCE, dtype=np.int64))
            coords.append(np.zeros((1, 2), dtype=np.int64))
            offset += 1
            continue
        internal = s.parent[n:]
        shift = offset - n  # local internal id u (>= n) becomes u + shift
        token_parent[slots] = s.parent[:n] + shift
        token_coord[slots] = s.coord[:n]
        parents.append(np.where(internal >= 0, internal + shift, -1))
        domains.append(s.domain[n:])
        coords.append(s.coord[n:])
        offset += internal.shape[0]
    parent = np.concatenate([token_parent, *parents])
    domain = np.concatenate([np.zeros(total, dtype=np.int64), *domains])
    coord = np.concatenate([token_coord, *coords])
    return Hierarchy(parent, num_tokens=total, domain=domain, coord=coord)


def collate(samples: Sequence[SampleTree], *, multiple_of: int = 8) -> Batch:
    """Pad ``samples`` to ``N`` tokens each (the longest, rounded up to ``multiple_of``) and stack them.

    Returns:
        ``tokens``, ``positions``, ``modality`` ``[B, N]`` long; ``mask`` ``[B, N]`` bool; ``label`` ``[B]``;
        ``features`` ``[B, N, F]`` float32 when the samples have features; ``tree`` and ``flat``: the
        hierarchies over the ``B * N`` token slots (padding slots belong to no tree).
    """
    longest = max(s.num_tokens for s in samples)
    n = -(-longest // multiple_of) * multiple_of
    size = len(samples)
    tokens = np.zeros((size, n), dtype=np.int64)
    positions = np.zeros((size, n), dtype=np.int64)
    modality = np.zeros((size, n), dtype=np.int64)
    mask = np.zeros((size, n), dtype=bool)
    for b, s in enumerate(samples):
        k = s.num_tokens
        tokens[b, :k], positions[b, :k], modality[b, :k], mask[b, :k] = (
            s.tokens,
            s.positions,
            s.modality,
            True,
        )
    batch: Batch = {
        "tokens": torch.from_numpy(tokens),
        "positions": torch.from_numpy(positions),
        "modality": torch.from_numpy(modality),
        "mask": torch.from_numpy(mask),
        "label": torch.tensor([s.label for s in samples], dtype=torch.long),
        "tree": _forest(samples, n, flat=False),
        "flat": _forest(samples, n, flat=True),
    }
    if samples[0].features is not None:
        width = samples[0].features.shape[1]
        features = np.zeros((size, n, width), dtype=np.float32)
        for b, s in enumerate(samples):
            if s.features is not None:
                features[b, : s.num_tokens] = s.features
        batch["features"] = torch.from_numpy(features)
    return batch


def _length_batches(
    samples: Sequence[SampleTree], batch_size: int, seed: int, *, pool: int = 32, shuffle: bool = True
) -> list[Batch]:
    """Batches of similar lengths: shuffle (seeded), sort by length inside pools of ``pool`` batches, cut."""
    order = np.random.default_rng(seed).permutation(len(samples)) if shuffle else np.arange(len(samples))
    lengths = np.asarray([s.num_tokens for s in samples])
    batches: list[Batch] = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        for lo in range(0, len(chunk), batch_size):
            batches.append(collate([samples[i] for i in chunk[lo : lo + batch_size]]))
    return batches


class BatchOptions(TypedDict, total=False):
    """The batching arguments of :class:`TreeClassificationData` (its subclasses' ``**batching``)."""

    batch_size: int
    eval_batch_size: int | None
    batch_seed: int


class TreeClassificationData:
    """Training, validation and test samples as fixed padded batches (see the module docstring).

    Subclasses load the samples and call :meth:`_set_samples`. ``vocab_size``, ``num_features`` and
    ``max_positions`` are what the model's embedding tables need (configs interpolate them).

    Args:
        batch_size: training batch size (default: ``64``).
        eval_batch_size: validation and test batch size (default: ``None``, ``2 * batch_size``).
        batch_seed: seed of the batches' composition (default: ``0``).
    """

    vocab_size: int
    vocab_used: int
    num_features: int = 0
    max_positions: int
    num_classes: int = 2

    def __init__(
        self, *, batch_size: int = 64, eval_batch_size: int | None = None, batch_seed: int = 0
    ) -> None:
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(
                f"{type(self).__name__}: batch_size and eval_batch_size must be >= 1, got {batch_size} and "
                f"{eval_batch_size}"
            )
        self.batch_size = batch_size
        self.eval_batch_size = 2 * batch_size if eval_batch_size is None else eval_batch_size
        self.batch_seed = batch_seed
        self._train: list[Batch] = []
        self._val: list[Batch] = []
        self._test: list[Batch] = []

    def _set_samples(
        self,
        train: Sequence[SampleTree],
        val: Sequence[SampleTree],
        test: Sequence[SampleTree],
        *,
        vocab_size: int,
        vocab_used: int,
        max_positions: int,
    ) -> None:
        """Batch the splits' samples; ``vocab_size`` (the word table's rows), ``vocab_used`` (the words the
        vocabulary holds) and ``max_positions`` (the position table's rows) size the model's tables."""
        if not train or not val or not test:
            raise ValueError(
                f"{type(self).__name__}: every split needs samples, got {len(train)} train, {len(val)} "
                f"validation and {len(test)} test samples"
            )
        self.vocab_size, self.vocab_used, self.max_positions = vocab_size, vocab_used, max_positions
        self.num_train, self.num_val, self.num_test = len(train), len(val), len(test)
        self._train = _length_batches(train, self.batch_size, self.batch_seed)
        self._val = _length_batches(val, self.eval_batch_size, 0, shuffle=False)
        self._test = _length_batches(test, self.eval_batch_size, 0, shuffle=False)

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch."""
        return len(self._train)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: every training batch once, in an order drawn from ``generator``."""
        for i in torch.randperm(len(self._train), generator=generator).tolist():
            yield self._train[i]

    def val_batches(self) -> list[Batch]:
        """The validation batches (the trainer's accuracy is their mean; :func:`evaluate_accuracy` is exact)."""
        return self._val

    def test_batches(self) -> list[Batch]:
        """The test batches."""
        return self._test


class HsaClassifier(nn.Module):
    r"""Embedding, hierarchical transformer encoder, masked mean pooling, two-layer head (module docstring).

    .. math::
        x_i = E_w[w_i] + W_f f_i + E_p[p_i] + E_m[m_i],\qquad
        h = \operatorname{Encoder}(x; \mathcal T),\qquad
        \hat y = W_2 \operatorname{GELU}(W_1 \tfrac{1}{n}\textstyle\sum_i h_i)

    with :math:`\mathcal T` the sample's own tree (``attention="hsa"``) or its flat tree (``"flat"``).

    Args:
        vocab_size: rows of the word table (id ``0`` pads).
        num_classes: classes :math:`C` (default: ``2``).
        attention: ``"hsa"`` or ``"flat"`` (default: ``"hsa"``).
        d_model: model width (default: ``64``).
        nhead: attention heads (default: ``4``).
        num_layers: encoder layers (default: ``2``).
        dim_feedforward: FFN width; ``None``: ``2 * d_model`` (default: ``None``).
        dropout: dropout on the embeddings, in the encoder and the head (default: ``0.1``).
        num_features: width of continuous token features (``0``: none) (default: ``0``).
        max_positions: rows of the position table (default: ``512``).
        num_modalities: modality ids ``1 .. num_modalities`` (default: ``1``).
        positional: learnable sibling positional terms in the attention (default: ``True``).
        max_offset: their clipping radius (default: ``8``).
        pooling: ``"mean"``, the masked mean over all tokens; or ``"modality"``, the mean over each
            modality's tokens (zero for an absent one) concatenated with their elementwise products (pairs of
            modalities), so that the head reads a bilinear interaction between modalities (a label that is
            the XOR of a text and an image factor is a product of their ``±1`` codes) (default: ``"mean"``).

    Batches: as :func:`collate` builds them.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        attention: Attention = "hsa",
        *,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        num_features: int = 0,
        max_positions: int = 512,
        num_modalities: int = 1,
        positional: bool = True,
        max_offset: int = 8,
        pooling: Pooling = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if pooling not in get_args(Pooling):
            raise ValueError(f"{name}: pooling must be one of {list(get_args(Pooling))}, got {pooling!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"{name}: attention must be one of {list(ATTENTIONS)}, got {attention!r}")
        for arg, value in (
            ("vocab_size", vocab_size),
            ("num_classes", num_classes),
            ("max_positions", max_positions),
            ("num_modalities", num_modalities),
        ):
            if value < 1:
                raise ValueError(f"{name}: {arg} must be >= 1, got {value}")
        if num_features < 0:
            raise ValueError(f"{name}: num_features must be >= 0, got {num_features}")
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        self.attention: Attention = attention
        self.d_model = d_model
        self.num_features = num_features
        self.num_modalities = num_modalities
        self.pooling: Pooling = pooling
        self.words = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.features = nn.Linear(num_features, d_model) if num_features else None
        self.positions = nn.Embedding(max_positions, d_model)
        self.modalities = nn.Embedding(num_modalities + 1, d_model)
        self.dropout = nn.Dropout(dropout)
        layer = HierarchicalTransformerEncoderLayer(
            d_model,
            nhead,
            2 * d_model if dim_feedforward is None else dim_feedforward,
            dropout,
            positional=positional,
            max_offset=max_offset,
        )
        self.encoder = HierarchicalTransformerEncoder(layer, num_layers)
        pooled = d_model
        if pooling == "modality":
            pooled = d_model * (num_modalities + num_modalities * (num_modalities - 1) // 2)
        self.head = nn.Sequential(
            nn.Linear(pooled, d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_model, num_classes)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.words, self.positions, self.modalities):
            nn.init.normal_(table.weight, std=0.02)
        with torch.no_grad():
            self.words.weight[0].zero_()
        if self.features is not None:
            self.features.reset_parameters()
        for layer in self.encoder.layers:
            layer.reset_parameters()  # type: ignore[operator]
        for module in self.head:
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, batch: Batch) -> Tensor:
        """Logits ``[B, C]``."""
        x = (
            self.words(batch["tokens"])
            + self.positions(batch["positions"])
            + self.modalities(batch["modality"])
        )
        if self.features is not None:
            x = x + self.features(batch["features"])
        hierarchy: Hierarchy = batch["tree" if self.attention == "hsa" else "flat"]
        h = self.encoder(self.dropout(x), hierarchy)  # [B, N, D]
        if self.pooling == "mean":
            mask = batch["mask"].unsqueeze(-1).to(h.dtype)
            return self.head((h * mask).sum(1) / mask.sum(1).clamp_min(1.0))
        means = []
        for m in range(1, self.num_modalities + 1):
            mask = (batch["modality"] == m).unsqueeze(-1).to(h.dtype)  # [B, N, 1]
            means.append((h * mask).sum(1) / mask.sum(1).clamp_min(1.0))  # [B, D], zero if absent
        pairs = [means[i] * means[j] for i in range(len(means)) for j in range(i + 1, len(means))]
        return self.head(torch.cat(means + pairs, dim=-1))

    def training_loss(self, batch: Batch) -> Tensor:
        """Cross-entropy."""
        return F.cross_entropy(self(batch), batch["label"])

    def validation_metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``loss`` and ``accuracy`` of the batch."""
        logits = self(batch)
        return {
            "loss": F.cross_entropy(logits, batch["label"]),
            "accuracy": (logits.argmax(-1) == batch["label"]).to(torch.float32).mean(),
        }

    def extra_repr(self) -> str:
        return (
            f"attention={self.attention!r}, vocab_size={self.vocab_size}, num_classes={self.num_classes}, "
            f"pooling={self.pooling!r}"
        )


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, batches: Iterable[Batch], device: torch.device | str) -> float:
    """Exact accuracy of ``model`` over all samples of ``batches`` (eval mode)."""
    from geoattn.train.trainer import move_to_device

    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    count = 0
    for batch in batches:
        on_device = move_to_device(batch, torch.device(device))
        correct += (model(on_device).argmax(-1) == on_device["label"]).sum()
        count += int(batch["label"].shape[0])
    model.train(was_training)
    return float(correct) / max(count, 1)


# ---------------------------------------------------------------------------------------------- runs
def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparison_table(rows: Sequence[dict[str, Any]], variants: Sequence[str], title: str) -> str:
    """Markdown: one row per variant (mean +- std over seeds, and the seeds' values), then HSA minus flat.

    Runs that stopped at their time limit before ``max_steps`` are flagged under the table: the comparison is
    then one of equal time, not of equal steps, and says so."""
    lines = [
        f"### {title}",
        "",
        "| variant | seeds | params | steps | train s (mean) | val acc | test acc (mean ± std) | test acc per seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    means: dict[str, float] = {}
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        if not mine:
            continue
        test = [r["test_accuracy"] for r in mine]
        val = [r["val_accuracy"] for r in mine]
        means[variant] = statistics.mean(test)
        std = statistics.stdev(test) if len(test) > 1 else 0.0
        steps = sorted({r["steps"] for r in mine})
        lines.append(
            f"| {variant} | {len(mine)} | {mine[0]['params']:,} | {'/'.join(map(str, steps))} | "
            f"{statistics.mean(r['train_seconds'] for r in mine):.1f} | {statistics.mean(val):.4f} | "
            f"{means[variant]:.4f} ± {std:.4f} | "
            + ", ".join(f"{r['seed']}: {r['test_accuracy']:.4f}" for r in mine)
            + " |"
        )
    short = sorted({f"{r['variant']} seed {r['seed']}" for r in rows if r["steps"] < r["max_steps"]})
    if short:
        lines += [
            "",
            f"**Stopped at the time limit before max_steps ({rows[0]['max_steps']}):** {', '.join(short)}. "
            "The variants did not train for the same number of steps: this is an equal-time comparison.",
        ]
    if "hsa" in means and "flat" in means:
        lines += ["", f"HSA - flat: {100 * (means['hsa'] - means['flat']):+.2f} points of test accuracy."]
    return "\n".join(lines)


def run_comparison(
    experiment: str,
    variants: dict[str, list[str]],
    seeds: Sequence[int],
    out: str | Path,
    *,
    overrides: Sequence[str] = (),
    device: str = "auto",
    title: str | None = None,
    note: str = "",
) -> list[dict[str, Any]]:
    """Train and score every ``variant x seed`` of ``experiment``; write ``out/results.{jsonl,md}`` as it goes.

    Each run is ``geoattn-train experiment=<experiment> seed=<seed> trainer.device=<device> <overrides>
    <variant overrides>`` in ``out/<variant>_seed<seed>``; afterwards its final weights are scored on the
    data source's validation and test batches (exact accuracy). A ``(variant, seed)`` already in
    ``results.jsonl`` is skipped; a run folder with checkpoints but no result row resumes from its newest
    checkpoint.

    Args:
        experiment: the experiment config, e.g. ``"hsa/sst"``.
        variants: name -> extra overrides (e.g. ``{"hsa": ["model.attention=hsa"], ...}``).
        seeds: the seeds.
        out: the output folder.
        overrides: overrides for every run (e.g. smoke sizes, a time limit).
        device: ``trainer.device``.
        title: the markdown section title (default: ``None``, the experiment).
        note: text printed and written under the title (e.g. that a pairing is constructed).

    Returns:
        All result rows of ``out/results.jsonl`` for these variants and seeds.
    """
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from geoattn.train import resolve_config, train
    from geoattn.train.checkpoint import CHECKPOINT_DIR, instantiate_from_checkpoint, list_checkpoints
    from geoattn.train.trainer import resolve_device

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    jsonl = folder / "results.jsonl"
    title = title or f"{experiment}: HSA vs flat softmax"
    if note:
        print(note)
    for seed in seeds:
        for variant, extra in variants.items():
            if any(r["variant"] == variant and r["seed"] == seed for r in _read_rows(jsonl)):
                print(f"{variant} seed {seed}: already in {jsonl}, skipped")
                continue
            run_dir = folder / f"{variant}_seed{seed}"
            saved = run_dir / CHECKPOINT_DIR
            resume = run_dir if saved.is_dir() and list_checkpoints(saved) else None
            args = [
                f"experiment={experiment}",
                f"seed={seed}",
                f"trainer.device={device}",
                "trainer.progress_bar=false",
                *overrides,
                *extra,
            ]
            if resume is not None:
                args.append(f"resume={resume}")
            with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
                cfg = compose(config_name="train", overrides=args)
            start = time.perf_counter()
            result = train(cfg, run_dir=run_dir)
            seconds = time.perf_counter() - start
            assert result.last_checkpoint is not None
            resolved = resolve_config(cfg)
            dev = resolve_device(resolved["trainer"]["device"])
            model = instantiate_from_checkpoint(result.last_checkpoint, map_location=dev)
            data = instantiate(resolved["data"])
            row = {
                "experiment": experiment,
                "variant": variant,
                "seed": seed,
                "steps": result.step,
                "max_steps": resolved["trainer"]["max_steps"],
                "train_seconds": round(seconds, 2),
                "params": count_parameters(model),
                "val_accuracy": evaluate_accuracy(model, data.val_batches(), dev),
                "test_accuracy": evaluate_accuracy(model, data.test_batches(), dev),
                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                "resumed": resume is not None,
            }
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{variant} seed {seed}: {row['steps']} steps in {seconds:.1f} s, "
                f"val {row['val_accuracy']:.4f}, test {row['test_accuracy']:.4f}"
            )
    rows = [r for r in _read_rows(jsonl) if r["variant"] in variants and r["seed"] in set(seeds)]
    table = comparison_table(rows, list(variants), title)
    (folder / "results.md").write_text(table + ("\n\n" + note if note else "") + "\n")
    print(table)
    if not all(math.isfinite(r["test_accuracy"]) for r in rows):
        raise FloatingPointError("a test accuracy is not finite")
    return rows


def comparison_main(
    argv: Sequence[str] | None,
    experiment: str,
    variants: dict[str, list[str]],
    smoke: Sequence[str],
    *,
    data_root: Path,
    title: str,
    note: str = "",
    description: str | None = None,
) -> list[dict[str, Any]]:
    """The command line of a comparison example (``examples/hsa_*.py``): parse ``argv``, run the comparison.

    Options: ``--seeds`` (default ``0 1 2``; with ``--smoke``, ``0``), ``--variants`` (a subset of
    ``variants``), ``--device``, ``--minutes`` (time limit per run), ``--data-root`` (``data.root``),
    ``--out`` (default ``outputs/<experiment with "/" as "_">``) and ``--smoke`` (the ``smoke`` overrides,
    on CPU with one thread); then :func:`run_comparison`.

    Args:
        argv: the arguments (``None``: ``sys.argv[1:]``).
        experiment: the experiment config, e.g. ``"hsa/sst"``.
        variants: name -> extra overrides, in the order they run.
        smoke: overrides of a tiny model and data for ``--smoke``.
        data_root: the default of ``--data-root``.
        title: the results table's title.
        note: see :func:`run_comparison` (default: ``""``).
        description: the help text (the example's docstring) (default: ``None``).

    Returns:
        :func:`run_comparison`'s rows.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1 2; --smoke: 0)")
    parser.add_argument("--variants", nargs="+", choices=sorted(variants), default=list(variants))
    parser.add_argument("--device", default="auto", help="trainer.device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--minutes", type=float, default=5.0, help="time limit per training run")
    parser.add_argument("--data-root", type=Path, default=data_root)
    parser.add_argument("--out", type=Path, default=Path("outputs") / experiment.replace("/", "_"))
    parser.add_argument("--smoke", action="store_true", help="tiny model and data, a few steps on CPU")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([0] if args.smoke else [0, 1, 2])
    if args.smoke:
        torch.set_num_threads(1)  # tiny sizes: threads only contend on a busy machine
    overrides = [f"data.root={args.data_root}", f"trainer.time_limit_s={60 * args.minutes}"]
    return run_comparison(
        experiment,
        {v: variants[v] for v in args.variants},
        seeds,
        args.out,
        overrides=overrides + (list(smoke) if args.smoke else []),
        device="cpu" if args.smoke else args.device,
        title=title,
        note=note,
    )
