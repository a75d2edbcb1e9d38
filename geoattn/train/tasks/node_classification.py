r"""Node classification on one graph, full batch: a graph-attention classifier whose layer is chosen by name.

The classifier (:class:`NodeClassifier`) is

.. math::
    h^{(0)} = W_{in}\,\operatorname{dropout}(x),\qquad
    h^{(l)} = \operatorname{dropout}\bigl(\operatorname{ELU}(\operatorname{conv}_l(h^{(l-1)}, E))\bigr),
    \qquad \hat y = \operatorname{softmax}(W_{out} h^{(L)}),

with every hidden representation of width ``heads * hidden_channels`` and ``conv`` one of

- ``"euclidean"``, ``"hyperbolic"``, ``"spherical"``: :class:`~geoattn.nn.ManifoldAttentionConv` with
  curvature :math:`0`, :math:`\kappa_h < 0` or :math:`\kappa_h > 0` per head (learnable within its sign, or
  fixed at :math:`\mp 1`);
- ``"cat"``: :class:`~geoattn.nn.CurvatureAdaptiveConv`, the three geometries routed per node;
- ``"gat"``: PyG's :class:`~torch_geometric.nn.conv.GATConv` (Veličković et al. 2018, arXiv:1710.10903)
  with a residual connection, as the peer (the geoattn layers have a root weight).

The loss is the cross-entropy on the training nodes, plus ``routing_weight`` times the mean over layers of
:func:`~geoattn.nn.routing_regularizer` of the routing weights for ``"cat"``. Metrics are accuracy and
macro-F1 (:func:`classification_metrics`).

For ``geoattn-train`` a training step is one full-batch epoch: :class:`NodeClassificationData` yields the
whole graph as the only batch of every epoch, and validation scores the validation nodes. Scripts (the
example, the benchmark) use :func:`fit_full_batch`: Adam, early stopping on validation accuracy, test
metrics of the best validation epoch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import GATConv

from geoattn.datasets import DEFAULT_SPLIT_SEED, load_node_dataset
from geoattn.kernels.manifold_attention import Aggregation, Score
from geoattn.manifolds import CurvatureModule, FixedCurvature, HyperbolicCurvature, SphericalCurvature
from geoattn.nn import BRANCHES, CurvatureAdaptiveConv, ManifoldAttentionConv, routing_regularizer

__all__ = [
    "CONVS",
    "ConvName",
    "FitResult",
    "NodeClassificationData",
    "NodeClassifier",
    "classification_metrics",
    "f1_per_class",
    "fit_full_batch",
]

ConvName = Literal["euclidean", "hyperbolic", "spherical", "cat", "gat"]
#: Accepted ``conv`` names of :class:`NodeClassifier`.
CONVS: tuple[str, ...] = get_args(ConvName)

Batch = dict[str, Tensor]


def _counts(index: Tensor, size: int) -> Tensor:
    """``bincount`` as float32 with a fixed length, without the device sync ``torch.bincount`` needs on CUDA."""
    ones = torch.ones(index.shape, dtype=torch.float32, device=index.device)
    return torch.zeros(size, dtype=torch.float32, device=index.device).index_add_(0, index, ones)


def f1_per_class(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    r"""F1 of every class, :math:`F_1^{(c)} = 2\,TP_c / (2\,TP_c + FP_c + FN_c)` (0 where undefined).

    Args:
        pred: ``[M]`` predicted classes.
        target: ``[M]`` true classes.
        num_classes: :math:`C`.

    Returns:
        ``[C]`` float32; a class absent from both ``pred`` and ``target`` gets 0.
    """
    confusion = _counts(target * num_classes + pred, num_classes * num_classes)
    confusion = confusion.view(num_classes, num_classes)  # [true, predicted]
    tp = confusion.diagonal()
    denominator = confusion.sum(0) + confusion.sum(1)  # 2 TP + FP + FN
    return 2 * tp / denominator.clamp_min(1)


def classification_metrics(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    r"""``loss`` (cross-entropy), ``accuracy`` and ``macro_f1`` of ``logits [M, C]`` against ``target [M]``.

    Macro-F1 averages :func:`f1_per_class` over the classes that occur in the targets or the predictions
    (scikit-learn's ``f1_score(average="macro")``). No device sync: the values stay tensors.
    """
    num_classes = logits.shape[-1]
    pred = logits.argmax(-1)
    present = (_counts(target, num_classes) + _counts(pred, num_classes)) > 0
    f1 = f1_per_class(pred, target, num_classes)
    return {
        "loss": F.cross_entropy(logits, target),
        "accuracy": (pred == target).to(torch.float32).mean(),
        "macro_f1": (f1 * present).sum() / present.sum().clamp_min(1),
    }


def _curvature_module(conv: str, heads: int, learnable: bool) -> CurvatureModule:
    if conv == "euclidean":
        return FixedCurvature(0.0, shape=heads)
    if not learnable:
        return FixedCurvature(-1.0 if conv == "hyperbolic" else 1.0, shape=heads)
    if conv == "hyperbolic":
        return HyperbolicCurvature(-1.0, shape=heads)
    return SphericalCurvature(1.0, shape=heads)


class NodeClassifier(nn.Module):
    r"""Input map, ``num_layers`` graph-attention layers of one kind, linear classifier (module docstring).

    Every kind gets the same width ``heads * hidden_channels``, heads, depth and dropout, so the models
    differ only in the attention layer (parameter counts differ: the geoattn layers have separate query,
    key and value maps; ``"cat"`` adds a router).

    Args:
        in_channels: input features :math:`F`.
        num_classes: classes :math:`C`.
        conv: ``"euclidean"``, ``"hyperbolic"``, ``"spherical"``, ``"cat"`` or ``"gat"``. Default: ``"cat"``.
        hidden_channels: features per head. Default: ``16``.
        heads: attention heads per layer (per branch for ``"cat"``). Default: ``4``.
        num_layers: graph-attention layers :math:`L \ge 1`. Default: ``2``.
        dropout: dropout on the input features and after every layer. Default: ``0.5``.
        attention_dropout: dropout on the attention coefficients; ``None``: ``dropout``. Default: ``None``.
        learnable_curvature: learn the per-head curvature (within its sign) of ``"hyperbolic"``,
            ``"spherical"`` and ``"cat"``; otherwise fixed at :math:`-1` / :math:`+1`. Default: ``True``.
        routing_weight: weight of the routing regulariser for ``"cat"``. Default: ``0.01``.
        score: attention score of the geoattn layers (every branch of ``"cat"``), ``"distance"`` or
            ``"tangent_dot"`` (see :class:`~geoattn.nn.ManifoldAttentionConv`). Default: ``"distance"``.
        aggregation: neighbour aggregation of the geoattn layers, ``"midpoint"`` or ``"tangent"``.
            Default: ``"midpoint"``.
        shared_projections: ``"cat"`` only: one set of query/key/value projections for the three branches
            (see :class:`~geoattn.nn.CurvatureAdaptiveConv`). Default: ``True``.

    ``"gat"`` has no ``score``, ``aggregation`` or ``shared_projections``, and the single-geometry kinds no
    ``shared_projections``: a value other than the default for a kind without it raises ``ValueError``
    rather than being ignored. The defaults are the ones ``benchmarks/node_classification.py`` runs; its
    ``--cat-variants`` mode compares them with the alternatives for ``"cat"``.

    Shapes:
        - :meth:`forward`: ``x [N, F]``, ``edge_index [2, E]`` -> logits ``[N, C]``; with
          ``return_routing=True`` also the routing weights ``[L, N, 3]`` (``"cat"``; empty ``[0, N, 3]``
          otherwise) in the order of :data:`~geoattn.nn.BRANCHES`.

    Batches (:meth:`training_loss`, :meth:`validation_metrics`): dicts with ``x``, ``edge_index``, ``y`` and
    the masks ``train_mask`` / ``val_mask`` (as :class:`NodeClassificationData` yields them).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        conv: ConvName = "cat",
        *,
        hidden_channels: int = 16,
        heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.5,
        attention_dropout: float | None = None,
        learnable_curvature: bool = True,
        routing_weight: float = 0.01,
        score: Score = "distance",
        aggregation: Aggregation = "midpoint",
        shared_projections: bool = True,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if conv not in CONVS:
            raise ValueError(f"{name}: conv must be one of {CONVS}, got {conv!r}")
        for arg, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("hidden_channels", hidden_channels),
            ("heads", heads),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be an int >= 1, got {value!r}")
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        for arg, p in (("dropout", dropout), ("attention_dropout", attention_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name}: {arg} must be in [0, 1), got {p}")
        if routing_weight < 0:
            raise ValueError(f"{name}: routing_weight must be >= 0, got {routing_weight}")
        if score not in get_args(Score):
            raise ValueError(f"{name}: score must be one of {get_args(Score)}, got {score!r}")
        if aggregation not in get_args(Aggregation):
            raise ValueError(
                f"{name}: aggregation must be one of {get_args(Aggregation)}, got {aggregation!r}"
            )
        # Options a kind does not have: only their defaults are accepted, so a config cannot silently ask
        # for a variant that is not run.
        absent = {"gat": ("score", "aggregation", "shared_projections"), "cat": ()}.get(
            conv, ("shared_projections",)
        )
        for option, chosen, default in (
            ("score", score, "distance"),
            ("aggregation", aggregation, "midpoint"),
            ("shared_projections", shared_projections, True),
        ):
            if option in absent and chosen != default:
                raise ValueError(
                    f"{name}: conv={conv!r} has no {option}; leave it at {default!r}, got {chosen!r}"
                )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv: ConvName = conv
        self.hidden_channels = hidden_channels
        self.heads = heads
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.learnable_curvature = learnable_curvature
        self.routing_weight = float(routing_weight)
        self.score: Score = score
        self.aggregation: Aggregation = aggregation
        self.shared_projections = shared_projections
        width = heads * hidden_channels
        self.input = nn.Linear(in_channels, width)
        self.convs = nn.ModuleList(self._make_conv(width) for _ in range(num_layers))
        self.classifier = nn.Linear(width, num_classes)

    def _make_conv(self, width: int) -> nn.Module:
        c, h, p = self.hidden_channels, self.heads, self.attention_dropout
        if self.conv == "gat":
            gat: nn.Module = GATConv(width, c, heads=h, dropout=p, residual=True)
            return gat
        if self.conv == "cat":
            return CurvatureAdaptiveConv(
                width,
                c,
                heads=h,
                shared_projections=self.shared_projections,
                learnable_curvature=self.learnable_curvature,
                score=self.score,
                aggregation=self.aggregation,
                dropout=p,
            )
        module = _curvature_module(self.conv, h, self.learnable_curvature)
        return ManifoldAttentionConv(
            width, c, heads=h, curvature=module, score=self.score, aggregation=self.aggregation, dropout=p
        )

    def reset_parameters(self) -> None:
        self.input.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()  # type: ignore[operator]
        self.classifier.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, *, return_routing: bool = False) -> Any:
        """Logits ``[N, C]``, or ``(logits, routing [L, N, 3])`` with ``return_routing=True``."""
        h = self.input(F.dropout(x, self.dropout, self.training))
        routing: list[Tensor] = []
        for conv in self.convs:
            if self.conv == "cat":
                h, rho = conv(h, edge_index, return_routing=True)
                routing.append(rho)
            else:
                h = conv(h, edge_index)
            h = F.dropout(F.elu(h), self.dropout, self.training)
        logits = self.classifier(h)
        if not return_routing:
            return logits
        stacked = torch.stack(routing) if routing else logits.new_zeros(0, x.shape[0], len(BRANCHES))
        return logits, stacked

    def curvatures(self) -> dict[str, Tensor]:
        r"""Mean curvature over layers and heads: ``{"k": ...}`` for one geometry, ``{"k_hyperbolic": ...,
        "k_spherical": ...}`` for ``"cat"``, ``{}`` for ``"gat"`` (detached scalars)."""
        if self.conv == "gat":
            return {}
        geometries = [
            cast(ManifoldAttentionConv | CurvatureAdaptiveConv, conv).geometry for conv in self.convs
        ]
        ks = torch.stack([g.curvature() for g in geometries]).detach()  # [L, G*H]
        if self.conv != "cat":
            return {"k": ks.mean()}
        per_branch = ks.unflatten(1, (len(BRANCHES), self.heads)).mean(dim=(0, 2))  # [3]
        return {"k_hyperbolic": per_branch[1], "k_spherical": per_branch[2]}

    def training_loss(self, batch: Batch) -> Tensor:
        """Cross-entropy on ``train_mask`` (+ ``routing_weight`` x the routing regulariser for ``"cat"``)."""
        logits, routing = self(batch["x"], batch["edge_index"], return_routing=True)
        # The mean over the masked nodes as a weighted sum: boolean indexing would sync with the device.
        weight = batch["train_mask"].to(logits.dtype)
        per_node = F.cross_entropy(logits, batch["y"], reduction="none")
        loss = (per_node * weight).sum() / weight.sum().clamp_min(1)
        if routing.shape[0] > 0 and self.routing_weight > 0:
            loss = loss + self.routing_weight * torch.stack([routing_regularizer(r) for r in routing]).mean()
        return loss

    def validation_metrics(self, batch: Batch) -> dict[str, Tensor]:
        """``loss``, ``accuracy``, ``macro_f1`` on ``val_mask``; the curvatures; for ``"cat"`` the mean routing
        weight of the validation nodes per branch (``routing_<branch>``, averaged over layers)."""
        logits, routing = self(batch["x"], batch["edge_index"], return_routing=True)
        mask = batch["val_mask"]
        metrics = classification_metrics(logits[mask], batch["y"][mask])
        metrics.update(self.curvatures())
        if routing.shape[0] > 0:
            mean = routing[:, mask].mean(dim=(0, 1))
            metrics.update({f"routing_{b}": mean[i] for i, b in enumerate(BRANCHES)})
        return metrics

    def extra_repr(self) -> str:
        return (
            f"conv={self.conv!r}, in_channels={self.in_channels}, num_classes={self.num_classes}, "
            f"hidden_channels={self.hidden_channels}, heads={self.heads}, num_layers={self.num_layers}"
            + ("" if self.conv == "gat" else f", score={self.score!r}, aggregation={self.aggregation!r}")
            + (f", shared_projections={self.shared_projections}" if self.conv == "cat" else "")
        )


class NodeClassificationData:
    """One graph from :func:`geoattn.datasets.load_node_dataset`, as full-batch training data.

    Every epoch is the one batch holding the whole graph (no randomness, so ``generator`` is unused);
    validation is the same batch, scored on ``val_mask``. ``num_features`` and ``num_classes`` are there so
    configs can interpolate them into the model (``${data.num_features}``); when given they are checked
    against the loaded graph.

    Args:
        name: ``"cora"``, ``"citeseer"``, ``"airport"`` or ``"disease"``.
        root: data root; ``None``: ``$GEOATTN_DATA``, else ``data/graphs``. Default: ``None``.
        cache_dir: writable folder for PyG's Planetoid files (see :func:`~geoattn.datasets.load_node_dataset`).
            Default: ``None``.
        split_seed: seed of the Airport and Disease splits. Default: ``1234``.
        features: feature variant (``NODE_DATASETS[name]``); ``None``: the dataset's default. Default: ``None``.
        num_features: expected feature count, or ``None``. Default: ``None``.
        num_classes: expected class count, or ``None``. Default: ``None``.

    Batches:
        ``{"x": [N, F], "edge_index": [2, E], "y": [N], "train_mask", "val_mask", "test_mask": [N] bool}``.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        split_seed: int = DEFAULT_SPLIT_SEED,
        features: str | None = None,
        num_features: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        data = load_node_dataset(name, root, cache_dir=cache_dir, split_seed=split_seed, features=features)
        found = {"num_features": int(data.num_features), "num_classes": int(data.y.max()) + 1}
        for key, expected in (("num_features", num_features), ("num_classes", num_classes)):
            if expected is not None and expected != found[key]:
                raise ValueError(
                    f"NodeClassificationData({name!r}): {key}={expected} but the loaded graph has "
                    f"{found[key]}; set data.{key}={found[key]}"
                )
        self.name = name
        self.num_features = found["num_features"]
        self.num_classes = found["num_classes"]
        self.batch: Batch = {
            "x": data.x,
            "edge_index": data.edge_index,
            "y": data.y,
            "train_mask": data.train_mask,
            "val_mask": data.val_mask,
            "test_mask": data.test_mask,
        }

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: the whole graph, once."""
        yield self.batch

    def val_batches(self) -> list[Batch]:
        """The whole graph (the model scores ``val_mask``)."""
        return [self.batch]


@dataclass
class FitResult:
    """What :func:`fit_full_batch` returns: the metrics at the epoch with the best validation accuracy.

    Attributes:
        best_epoch: the selected epoch (1-based; 0 if the first epoch already diverged).
        epochs: epochs run (early stopping or divergence may end before the budget).
        seconds: wall-clock time of the loop (synchronised with the device at the end).
        val: ``loss``, ``accuracy``, ``macro_f1`` on the validation nodes at ``best_epoch``.
        test: ``loss``, ``accuracy``, ``macro_f1`` on the test nodes at ``best_epoch``.
        test_f1_per_class: per-class test F1 at ``best_epoch`` (class ``c`` at index ``c``).
        curvatures: :meth:`NodeClassifier.curvatures` at ``best_epoch``.
        routing: ``[L, N, 3]`` routing weights of every node at ``best_epoch`` (CPU), for ``"cat"`` when
            requested; else ``None``.
        diverged: the training or validation loss became NaN/inf (training stopped there).
    """

    best_epoch: int
    epochs: int
    seconds: float
    val: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    test_f1_per_class: list[float] = field(default_factory=list)
    curvatures: dict[str, float] = field(default_factory=dict)
    routing: Tensor | None = None
    diverged: bool = False


def fit_full_batch(
    model: NodeClassifier,
    batch: Batch,
    *,
    lr: float,
    weight_decay: float = 0.0,
    epochs: int = 200,
    patience: int | None = 50,
    keep_routing: bool = False,
) -> FitResult:
    r"""Train ``model`` full-batch with Adam and early stopping on validation accuracy; score the best epoch.

    Every epoch is one optimiser step on :meth:`NodeClassifier.training_loss` followed by an evaluation
    (``eval`` mode) of all nodes. An epoch is *better* when its validation accuracy is higher, or equal
    with a lower validation loss; the test metrics reported are those of the best epoch (the model is scored
    on the test nodes every time it improves, and never selected on them). Training stops after
    ``patience`` epochs without improvement, at ``epochs``, or when a loss is not finite.

    ``model`` and ``batch`` must be on the same device already (the loop follows them).

    Args:
        model: the classifier.
        batch: ``x``, ``edge_index``, ``y``, ``train_mask``, ``val_mask``, ``test_mask``
            (:attr:`NodeClassificationData.batch`).
        lr: Adam's learning rate.
        weight_decay: Adam's (L2) weight decay. Default: ``0.0``.
        epochs: the epoch budget. Default: ``200``.
        patience: epochs without improvement before stopping; ``None`` trains the whole budget.
            Default: ``50``.
        keep_routing: keep the routing weights of the best epoch (``"cat"`` only). Default: ``False``.
    """
    if epochs < 1:
        raise ValueError(f"fit_full_batch: epochs must be >= 1, got {epochs}")
    if patience is not None and patience < 1:
        raise ValueError(f"fit_full_batch: patience must be >= 1 or None, got {patience}")
    device = batch["x"].device
    fused = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)
    x, edge_index, y = batch["x"], batch["edge_index"], batch["y"]
    val_index = batch["val_mask"].nonzero().flatten()  # indices, so no epoch syncs on boolean indexing
    test_index = batch["test_mask"].nonzero().flatten()
    y_val, y_test = y[val_index], y[test_index]
    result = FitResult(best_epoch=0, epochs=0, seconds=0.0)
    best = (-math.inf, math.inf)  # (val accuracy, val loss) of the best epoch so far
    waited = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = model.training_loss(batch)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits, routing = model(x, edge_index, return_routing=True)
            val = classification_metrics(logits.index_select(0, val_index), y_val)
            train_loss, val_accuracy, val_loss = torch.stack(
                [loss.detach(), val["accuracy"], val["loss"]]
            ).tolist()  # the one device sync of the epoch
        result.epochs = epoch
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            result.diverged = True
            break
        if val_accuracy > best[0] or (val_accuracy == best[0] and val_loss < best[1]):
            best = (val_accuracy, val_loss)
            waited = 0
            with torch.no_grad():
                test_logits = logits.index_select(0, test_index)
                test = classification_metrics(test_logits, y_test)
                per_class = f1_per_class(test_logits.argmax(-1), y_test, model.num_classes)
            result.best_epoch = epoch
            result.val = {k: float(v) for k, v in val.items()}
            result.test = {k: float(v) for k, v in test.items()}
            result.test_f1_per_class = per_class.tolist()
            result.curvatures = {k: float(v) for k, v in model.curvatures().items()}
            if keep_routing and routing.shape[0] > 0:
                result.routing = routing.detach().cpu()
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.seconds = time.perf_counter() - start
    return result
