r"""CAT for knowledge-graph completion: a Curvature-Adaptive transformer over ``[e_h, r]``, scored against every tail.

The query of a pair ``(h, r)`` is read from a small CAT encoder (:class:`~geoattn.nn.CATEncoder`, Lin et al.
2025, arXiv:2510.01634) run over the token sequence ``[CLS?, e_h, r]`` (plus learned token-type embeddings),
in the manner of transformer KG encoders such as HittER (Chen et al., EMNLP 2021) and CoKE (Wang et al.
2019); the tail is then scored in a chosen geometry. With inverse triples (``create_inverse_triples=True``)
head prediction is tail prediction of the inverse relation, so 1-N training and evaluation only ever call
``score_t``, where all tails are scored with one pairwise-distance matrix (or one matrix product).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, get_args

import torch
from pykeen.constants import DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE
from pykeen.models import ERModel
from pykeen.nn.modules import Interaction
from pykeen.typing import FloatTensor
from torch import nn
from torch.nn import init

from ..manifolds import (
    CurvatureModule,
    FixedCurvature,
    HyperbolicCurvature,
    SignedCurvature,
    SphericalCurvature,
    expmap0,
)
from ..nn import CATEncoder, CATEncoderLayer
from ..nn.curvature_adaptive_attention import BRANCHES
from .interactions import hyperbolic_tail_sqdist, is_one_to_many

__all__ = ["CAT", "CATInteraction", "ScoreGeometry", "TailScore"]

TailScore = Literal["distance", "dot"]
ScoreGeometry = Literal["euclidean", "hyperbolic", "spherical", "signed"]


def _score_curvature(geometry: ScoreGeometry) -> CurvatureModule:
    """The curvature of the tail-scoring space: fixed 0, learnable ``k < 0`` / ``k > 0`` (initially -1 / 1), or
    learnable of any sign (initially 0)."""
    if geometry == "euclidean":
        return FixedCurvature(0.0)
    if geometry == "hyperbolic":
        return HyperbolicCurvature(-1.0)
    if geometry == "spherical":
        return SphericalCurvature(1.0)
    return SignedCurvature(0.0)


def _attention_kind(geometries: str | Sequence[str]) -> str:
    """``geometries`` -> the ``attention`` of :class:`~geoattn.nn.CATEncoderLayer` (``"cat"`` or one geometry)."""
    names = (geometries,) if isinstance(geometries, str) else tuple(geometries)
    if not names or any(name not in BRANCHES for name in names) or len(set(names)) != len(names):
        raise ValueError(
            f"CATInteraction: geometries must be distinct names from {BRANCHES}, got {geometries!r}"
        )
    if len(names) == 1:
        return names[0]
    if set(names) == set(BRANCHES):
        return "cat"
    raise ValueError(
        f"CATInteraction: geometries must name one geometry (a fixed-geometry ablation) or all of {BRANCHES} "
        f"(CAT), got {geometries!r}"
    )


class CATInteraction(Interaction[FloatTensor, FloatTensor, tuple[FloatTensor, FloatTensor]]):
    r"""A CAT encoder over ``[CLS?, e_h, r]`` whose output query is compared with the tail.

    With the token sequence :math:`X = [\,c,\ \mathbf{e}_h + \mathbf{p}_h,\ \mathbf{r} + \mathbf{p}_r\,]`
    (the learned ``CLS`` token :math:`c` only with ``use_cls=True``; :math:`\mathbf{p}` learned token-type
    embeddings), the query is read from the CLS output (else the relation token's output):

    .. math::
        \mathbf{q} = W_q\,\operatorname{LN}\bigl(\operatorname{CATEncoder}(\operatorname{Dropout}(X))\bigr)_{\mathrm{read}}
        + \mathbf{b}_q \in \mathbb{R}^d,

    and a tail with embedding :math:`\mathbf{e}_t` and bias :math:`b_t` is scored by

    .. math::
        f_{\text{distance}}(h, r, t) = -d_k\bigl(\exp_0^k(\mathbf{q}),\ \exp_0^k(\mathbf{e}_t)\bigr)^2 + b_t,
        \qquad
        f_{\text{dot}}(h, r, t) = \langle \mathbf{q}, \mathbf{e}_t\rangle + b_t,

    with the κ-stereographic distance :math:`d_k` of a curvature :math:`k` set by ``score_geometry``
    (entities are tangent vectors at the origin; for :math:`k = 0`, :math:`d_0(x, y) = 2\|x - y\|`).

    Default: ``tail_score="distance"`` with ``score_geometry="signed"`` (a learnable curvature of any sign,
    starting Euclidean), the same for CAT and its ablations, so an ablation changes the attention only.
    ``"dot"`` is the scoring of HittER-style encoders; ``benchmarks/kg/results_table.py`` runs both
    (experiments ``kg/*_cat`` and ``kg/*_cat_dot``).

    ``geometries`` selects the attention of every layer: all three of ``("euclidean", "hyperbolic",
    "spherical")`` is CAT (:class:`~geoattn.nn.CurvatureAdaptiveAttention`, routing per token); one name is a
    fixed-geometry ablation (:class:`~geoattn.nn.ManifoldAttention` in that geometry) from the same code.

    1-N scoring (``score_t``: queries ``(B, 1, d)`` against all tails ``(1, N, d)``) runs the encoder once per
    query and scores all tails with :func:`~geoattn.kernels.pairwise_dist.pairwise_dist` (``distance``) or one
    matrix product (``dot``); no ``(B, N, d)`` tensor is formed. Other broadcasts (``score_h`` without inverse
    triples) run the encoder once per broadcast ``(h, r)`` pair.

    Args:
        embedding_dim: the model dimension ``d`` of entities, relations and the encoder. Default ``32``.
        num_layers: encoder layers. Default ``2``.
        num_heads: attention heads (per branch for CAT); must divide ``embedding_dim``. Default ``4``.
        dim_feedforward: feed-forward width; ``None``: ``4 * embedding_dim``. Default ``None``.
        dropout: dropout inside the encoder layers. Default ``0.1``.
        input_dropout: dropout on the input tokens. Default ``0.1``.
        geometries: ``("euclidean", "hyperbolic", "spherical")`` (CAT, default) or one of them.
        use_cls: prepend a learned CLS token and read the query from it. Default ``True``.
        tail_score: ``"distance"`` (default) or ``"dot"``.
        score_geometry: curvature of the distance score: ``"euclidean"`` (``k = 0``), ``"hyperbolic"`` /
            ``"spherical"`` (learnable, sign kept, initially -1 / 1) or ``"signed"`` (learnable, initially 0;
            default). Unused by ``"dot"``.
        attention_kwargs: extra keyword arguments of the attention modules (see
            :class:`~geoattn.nn.CATEncoderLayer`). Default ``None``.
        compile_encoder: run the encoder through :func:`torch.compile` (``True``: its default backend; a string:
            that backend, e.g. ``"aot_eager"``). Eagerly, the curvature-generic maps of the three branches make
            the encoder's forward and backward ~7,000 operator calls (torch profiler), launch-bound on a GPU
            (42.1 ms per 1,024-query WN18RR training step on an H200); compiled, that step takes 19.8 ms
            (``benchmarks/kg/epoch_speed.py --breakdown-only``). Default ``False``: compilation takes its own
            time at the first batches, which short runs do not win back. On an H200 with torch 2.11, inductor
            compiled and trained the three-branch encoder in eight FB15k-237 pipeline runs (one per process),
            but failed once (``AssertionError``, cause not found) in three WN18RR runs sharing one process pool
            (``benchmarks/RESULTS.md``).

    Shapes:
        ``h`` ``(*batch, d)``; ``r`` ``(*batch, d)``; ``t`` = (embedding ``(*batch, d)``, bias ``(*batch)``);
        scores ``(*batch)``, batch dimensions broadcast.
    """

    entity_shape = ("d", "")  # embedding and tail bias
    relation_shape = ("d",)
    _head_indices = (0,)  # the bias is for tails only

    def __init__(
        self,
        embedding_dim: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        input_dropout: float = 0.1,
        geometries: str | Sequence[str] = BRANCHES,
        use_cls: bool = True,
        tail_score: TailScore = "distance",
        score_geometry: ScoreGeometry = "signed",
        attention_kwargs: Mapping[str, Any] | None = None,
        compile_encoder: bool | str = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("embedding_dim", embedding_dim), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if tail_score not in get_args(TailScore):
            raise ValueError(f"{name}: tail_score must be one of {get_args(TailScore)}, got {tail_score!r}")
        if score_geometry not in get_args(ScoreGeometry):
            raise ValueError(
                f"{name}: score_geometry must be one of {get_args(ScoreGeometry)}, got {score_geometry!r}"
            )
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"{name}: input_dropout must be in [0, 1), got {input_dropout!r}")
        self.attention = _attention_kind(geometries)
        self.embedding_dim = embedding_dim
        self.use_cls = use_cls
        self.tail_score: TailScore = tail_score
        self.score_geometry: ScoreGeometry = score_geometry
        layer = CATEncoderLayer(
            embedding_dim,
            num_heads,
            dim_feedforward,
            dropout,
            attention=self.attention,  # type: ignore[arg-type]  # validated by _attention_kind
            attention_kwargs=attention_kwargs,
        )
        self.encoder = CATEncoder(layer, num_layers, norm=nn.LayerNorm(embedding_dim))
        if not isinstance(compile_encoder, bool | str):
            raise TypeError(
                f"{name}: compile_encoder must be a bool or a backend name, got {compile_encoder!r}"
            )
        self.compile_encoder = compile_encoder
        encoder_fn: Callable[[torch.Tensor], Any] = self.encoder
        if compile_encoder:
            backend = compile_encoder if isinstance(compile_encoder, str) else "inductor"  # torch's default
            encoder_fn = torch.compile(self.encoder, dynamic=True, backend=backend)
        # a plain attribute, outside the module tree: state dicts and checkpoints are the same either way
        self.__dict__["_encoder_fn"] = encoder_fn
        self.cls = nn.Parameter(torch.empty(embedding_dim)) if use_cls else None
        self.token_type = nn.Parameter(torch.empty(2, embedding_dim))  # head, relation
        self.input_dropout = nn.Dropout(input_dropout)
        self.query = nn.Linear(embedding_dim, embedding_dim)
        self.curvature = _score_curvature(score_geometry) if tail_score == "distance" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the encoder, the CLS and token-type embeddings, the query map and the curvature."""
        self.encoder.reset_parameters()
        std = 1.0 / math.sqrt(self.embedding_dim)
        if self.cls is not None:
            init.normal_(self.cls, std=std)
        init.normal_(self.token_type, std=std)
        self.query.reset_parameters()
        if self.curvature is not None:
            self.curvature.reset_parameters()

    def encode(self, h: FloatTensor, r: FloatTensor) -> FloatTensor:
        """The query ``(*broadcast(batch_h, batch_r), d)`` of head embeddings ``h`` and relations ``r``."""
        h, r = torch.broadcast_tensors(h, r)
        batch = h.shape[:-1]
        tokens = torch.stack((h, r), dim=-2).reshape(-1, 2, self.embedding_dim) + self.token_type  # [P, 2, d]
        if self.cls is not None:
            tokens = torch.cat((self.cls.expand(tokens.shape[0], 1, -1), tokens), dim=1)  # [P, 3, d]
        out = self.__dict__["_encoder_fn"](self.input_dropout(tokens))
        assert isinstance(out, torch.Tensor)
        read = out[:, 0] if self.cls is not None else out[:, -1]  # [P, d]
        return self.query(read).reshape(*batch, self.embedding_dim)

    def forward(self, h: FloatTensor, r: FloatTensor, t: tuple[FloatTensor, FloatTensor]) -> FloatTensor:
        """Scores ``(*batch)`` of heads ``(*batch, d)``, relations ``(*batch, d)`` and tails (embedding
        ``(*batch, d)``, bias ``(*batch)``), broadcasting over batch dimensions."""
        t_emb, t_bias = t
        q = self.encode(h, r)
        if self.curvature is None:  # tail_score == "dot"
            if is_one_to_many(q, t_emb):
                d = q.shape[-1]
                out_shape = torch.broadcast_shapes(q.shape[:-1], t_emb.shape[:-1])
                scores = (q.reshape(-1, d) @ t_emb.reshape(-1, d).T).reshape(out_shape)
            else:
                scores = (q * t_emb).sum(dim=-1)
            return scores + t_bias
        k = self.curvature()
        return -hyperbolic_tail_sqdist(expmap0(q, k=k), t_emb, k) + t_bias

    def __repr__(self) -> str:
        # One line of hyper-parameters only: PyKEEN checks a checkpoint against a hash of str(model), and the
        # submodules' reprs show learned curvatures, which would make every checkpoint look foreign on resume.
        return (
            f"{type(self).__name__}(embedding_dim={self.embedding_dim}, attention={self.attention!r}, "
            f"num_layers={self.encoder.num_layers}, use_cls={self.use_cls}, tail_score={self.tail_score!r}, "
            f"score_geometry={self.score_geometry!r})"
        )


class CAT(ERModel[FloatTensor, FloatTensor, tuple[FloatTensor, FloatTensor]]):
    r"""CAT for link prediction: :class:`CATInteraction` over entity and relation embeddings of dimension ``d``.

    Entities have an embedding :math:`\mathbf{e} \in \mathbb{R}^d` (the encoder input for heads, a tangent
    vector at the origin for tails) and a tail bias :math:`b`; relations an embedding :math:`\mathbf{r}`.
    Train it 1-N with inverse triples, e.g.::

        pipeline(dataset="WN18RR", dataset_kwargs=dict(create_inverse_triples=True), model="CAT",
                 training_loop="lcwa", loss="crossentropy", training_kwargs=dict(label_smoothing=0.1))

    Entities stay in the tangent space: they are the encoder's Euclidean input tokens, so storing them on a
    manifold (the ``entity_storage="manifold"`` option of the hyperbolic models) has no natural meaning here.

    Args:
        embedding_dim: ``d``. Default ``32``.
        interaction_kwargs: further keyword arguments of :class:`CATInteraction` (``num_layers``,
            ``num_heads``, ``geometries``, ``tail_score``, ...); ``embedding_dim`` is set from the model's.
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Lin
        year: 2025
        link: https://arxiv.org/abs/2510.01634
        arxiv: 2510.01634
    """

    hpo_default: ClassVar[Mapping[str, Any]] = dict(embedding_dim=DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE)

    def __init__(
        self,
        *,
        embedding_dim: int = 32,
        interaction_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        extra = dict(interaction_kwargs or {})
        if "embedding_dim" in extra:
            raise ValueError(
                "CAT: set embedding_dim on the model, not in interaction_kwargs "
                f"(got interaction_kwargs['embedding_dim']={extra['embedding_dim']!r})"
            )
        std = 1.0 / math.sqrt(embedding_dim) if isinstance(embedding_dim, int) and embedding_dim > 0 else 1.0
        embedding = dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=std))
        super().__init__(
            interaction=CATInteraction,
            interaction_kwargs=dict(embedding_dim=embedding_dim, **extra),
            entity_representations_kwargs=[embedding, dict(shape=(), initializer=init.zeros_)],
            relation_representations_kwargs=[embedding],
            **kwargs,
        )
        self.embedding_dim = embedding_dim
