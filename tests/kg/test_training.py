"""``FastLCWATrainingLoop``: found by name, PyKEEN's LCWA objective on a fixed batch (float32 and float64, every
loss path, head and tail targets, the fused loss), the same training trajectory as PyKEEN's loop (and with the fused
loss as without), checkpoints and stoppers through PyKEEN's machinery, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pykeen.datasets.base import Dataset
from pykeen.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss, MarginRankingLoss, SoftplusLoss
from pykeen.models import DistMult, Model, MuRE, RotatE, TransE
from pykeen.pipeline import pipeline
from pykeen.training import LCWATrainingLoop, training_loop_resolver
from pykeen.triples import LCWAInstances
from torch.utils.data import default_collate

import geoattn.kg  # noqa: F401  (registers the loop)
import geoattn.kg.losses as losses_module
from geoattn.kg import FastLCWATrainingLoop, RotH, local_kg_dataset
from geoattn.kg.distributed import SharedRandomSampler
from geoattn.kg.losses import PositiveTargets, dense_labels, sparse_lcwa_loss, supports_sparse_lcwa
from geoattn.kg.scoring import fast_tail_scorer, tail_distance_decomposition
from geoattn.kg.training import DeviceIncidence
from geoattn.train.distributed import DistEnv, rank_seed

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kg"


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    if not (DATA / "WN18RR" / "train.txt").is_file():
        pytest.skip(f"WN18RR not found under {DATA}")
    return local_kg_dataset("WN18RR", DATA, tiny=True, num_entities=300, create_inverse_triples=True)


def test_registered_by_name() -> None:
    assert training_loop_resolver.lookup("fastlcwa") is FastLCWATrainingLoop
    assert training_loop_resolver.lookup("FastLCWA") is FastLCWATrainingLoop
    assert issubclass(FastLCWATrainingLoop, LCWATrainingLoop)


# ---------------------------------------------------------------------------------------------------------------
# the loss from positives equals PyKEEN's dense process_lcwa_scores


def _random_targets(num_rows: int, num_targets: int, gen: torch.Generator) -> PositiveTargets:
    """1-3 positives per row, some with multiplicity 2 (duplicated training triples)."""
    rows, cols = [], []
    for row in range(num_rows):
        n = int(torch.randint(1, 4, (1,), generator=gen))
        cols += torch.randperm(num_targets, generator=gen)[:n].tolist()
        rows += [row] * n
    values = 1.0 + (torch.rand(len(rows), generator=gen) < 0.2).double()
    return PositiveTargets(torch.tensor(rows), torch.tensor(cols), values)


@pytest.mark.parametrize("loss_cls", [BCEWithLogitsLoss, CrossEntropyLoss])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("label_smoothing", [None, 0.0, 0.15])
def test_sparse_loss_equals_pykeen(
    loss_cls: type[Loss], reduction: str, label_smoothing: float | None
) -> None:
    gen = torch.Generator().manual_seed(3)
    num_rows, num_targets = 7, 11
    targets = _random_targets(num_rows, num_targets, gen)
    scores = (3 * torch.randn(num_rows, num_targets, generator=gen, dtype=torch.float64)).requires_grad_()
    loss = loss_cls(reduction=reduction)  # type: ignore[call-arg]
    assert supports_sparse_lcwa(loss)
    ours = sparse_lcwa_loss(loss, scores, targets, label_smoothing)
    labels = dense_labels(targets, num_rows, num_targets, torch.float64)
    assert labels.max() == 2.0  # multiplicities survive, as in PyKEEN's label matrix
    theirs = loss.process_lcwa_scores(
        scores, labels, label_smoothing=label_smoothing, num_entities=num_targets
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours, scores)
    (g_theirs,) = torch.autograd.grad(theirs, scores)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)


def test_sparse_loss_rejects_what_it_cannot_compute() -> None:
    targets = PositiveTargets(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]))
    for loss in (MarginRankingLoss(), BCEWithLogitsLoss(pos_weight=2.0), SoftplusLoss()):
        assert not supports_sparse_lcwa(loss)
        with pytest.raises(ValueError, match="is not supported"):
            sparse_lcwa_loss(loss, torch.zeros(1, 3), targets)
    with pytest.raises(ValueError, match=r"scores must be \[batch, num_targets\]"):
        sparse_lcwa_loss(CrossEntropyLoss(), torch.zeros(3), targets)


def test_device_incidence_matches_pykeen_labels(tiny: Dataset) -> None:
    instances = LCWAInstances.from_triples_factory(tiny.training)
    incidence = DeviceIncidence(instances, torch.device("cpu"))
    ids = torch.tensor([5, 0, len(incidence) - 1, 5])
    labels = dense_labels(incidence.positives(ids), len(ids), incidence.num_targets, torch.float32)
    expected = torch.stack([instances[int(i)]["target"] for i in ids])
    torch.testing.assert_close(labels, expected, rtol=0, atol=0)
    np.testing.assert_array_equal(incidence.pairs[ids].numpy(), instances.pairs[ids.numpy()])


# ---------------------------------------------------------------------------------------------------------------
# the fast 1-N scorer equals score_t


def _model(name: str, tiny: Dataset, dtype: torch.dtype = torch.float32, **kwargs: object) -> Model:
    cls = {"MuRE": MuRE, "RotatE": RotatE, "TransE": TransE, "DistMult": DistMult, "RotH": RotH}[name]
    model = cls(triples_factory=tiny.training, embedding_dim=8, random_seed=0, **kwargs)  # type: ignore[arg-type]
    return model.to(dtype)  # RotatE stores complex embeddings as real pairs


# the models with a distance decomposition (a fast scorer and the fused loss)
DISTANCE_MODELS = [
    ("MuRE", {}),
    ("RotatE", {}),
    ("TransE", {"scoring_fct_norm": 2}),
    ("TransE", {"scoring_fct_norm": 2, "power_norm": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), DISTANCE_MODELS)
def test_fast_tail_scorer_equals_score_t(tiny: Dataset, name: str, kwargs: dict[str, object]) -> None:
    model = _model(name, tiny, torch.float64, **kwargs)
    scorer, decompose = fast_tail_scorer(model), tail_distance_decomposition(model)
    assert scorer is not None and decompose is not None
    hr = torch.as_tensor(LCWAInstances.from_triples_factory(tiny.training).pairs[:9])
    torch.testing.assert_close(scorer(hr), model.score_t(hr), rtol=1e-9, atol=1e-9)
    pieces = decompose(hr)  # what the fused loss takes: q [B, d'], t [N, d'] and the biases
    assert pieces.q.shape[0] == 9 and pieces.t.shape[0] == model.num_entities
    assert (pieces.beta is None) == (pieces.gamma is None) == (name != "MuRE")


def test_fast_tail_scorer_declines_other_interactions(tiny: Dataset) -> None:
    assert tail_distance_decomposition(_model("DistMult", tiny)) is None
    assert fast_tail_scorer(_model("DistMult", tiny)) is None
    assert fast_tail_scorer(_model("TransE", tiny)) is None  # PyKEEN's default L1 norm
    assert fast_tail_scorer(_model("RotH", tiny)) is None  # its score_t already uses the pairwise kernel


# ---------------------------------------------------------------------------------------------------------------
# the loop's loss on a fixed batch equals PyKEEN's LCWA loop's


def _loops(
    model: Model, tiny: Dataset, target: int, fast_scoring: bool, fused_loss: bool = False
) -> tuple[FastLCWATrainingLoop, LCWATrainingLoop]:
    ours = FastLCWATrainingLoop(
        model=model,
        triples_factory=tiny.training,
        target=target,
        fast_scoring=fast_scoring,
        fused_loss=fused_loss,
    )
    theirs = LCWATrainingLoop(model=model, triples_factory=tiny.training, target=target)
    return ours, theirs


def _check_fixed_batch(
    tiny: Dataset,
    model: Model,
    label_smoothing: float,
    target: int = 2,
    fast_scoring: bool = True,
    tol: float = 1e-5,
    fused_loss: bool = False,
) -> None:
    """Loss value and every parameter gradient of one fixed (sub-)batch: our loop vs PyKEEN's LCWA loop."""
    ours, theirs = _loops(model, tiny, target, fast_scoring, fused_loss)
    ours._create_training_data_loader(tiny.training, sampler=None, batch_size=4)
    instances = LCWAInstances.from_triples_factory(tiny.training, target=target)
    ids = torch.tensor([3, 17, 0, 41, 2, len(instances) - 1])
    their_batch = default_collate([instances[int(i)] for i in ids])
    # PyKEEN's labels are float32 whatever the model's dtype
    their_batch["target"] = their_batch["target"].to(next(model.parameters()).dtype)
    values, grads = [], []
    for loop, batch in ((ours, ids), (theirs, their_batch)):
        model.zero_grad()
        value = loop._process_batch(batch, start=1, stop=6, label_smoothing=label_smoothing)  # type: ignore[arg-type]
        value.backward()
        values.append(value.detach())
        grads.append([p.grad.detach().clone() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(values[0], values[1], rtol=tol, atol=tol)
    assert len(grads[0]) == len(grads[1]) > 0
    for g_ours, g_theirs in zip(*grads, strict=True):
        torch.testing.assert_close(g_ours, g_theirs, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("name", "loss", "label_smoothing", "target", "fast_scoring"),
    [
        ("MuRE", BCEWithLogitsLoss(), 0.1, 2, True),
        ("MuRE", CrossEntropyLoss(), 0.1, 2, False),
        ("RotatE", CrossEntropyLoss(), 0.2, 2, True),
        ("RotH", BCEWithLogitsLoss(reduction="sum"), 0.0, 2, True),
        ("DistMult", MarginRankingLoss(), 0.0, 2, True),  # PyKEEN's dense path on device labels
        ("MuRE", CrossEntropyLoss(), 0.1, 0, True),  # head prediction
    ],
)
def test_fixed_batch_loss_equals_pykeen_lcwa(
    tiny: Dataset,
    dtype: torch.dtype,
    name: str,
    loss: Loss,
    label_smoothing: float,
    target: int,
    fast_scoring: bool,
) -> None:
    model = _model(name, tiny, dtype, loss=loss)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    _check_fixed_batch(tiny, model, label_smoothing, target, fast_scoring, tol)


# (dtype, through the Triton kernel): float64 always runs the reference
FUSED_PATHS = [(torch.float32, False), (torch.float64, False), (torch.float32, True)]


@pytest.mark.parametrize(("dtype", "kernel"), FUSED_PATHS, ids=["float32", "float64", "float32-kernel"])
@pytest.mark.parametrize(("name", "kwargs"), DISTANCE_MODELS)
def test_fixed_batch_fused_loss_equals_pykeen_lcwa(
    tiny: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    dtype: torch.dtype,
    name: str,
    kwargs: dict[str, object],
    kernel: bool,
) -> None:
    """``fused_loss=True`` (no score matrix); ``kernel``: through the Triton kernel (the interpreter on CPU)
    instead of the torch reference that ``backend="auto"`` picks for CPU tensors."""
    if kernel:
        real = losses_module.distance_logsumexp
        monkeypatch.setattr(
            losses_module, "distance_logsumexp", lambda *a, **k: real(*a, **{**k, "backend": "triton"})
        )
    model = _model(name, tiny, dtype, loss=CrossEntropyLoss(), **kwargs)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    _check_fixed_batch(tiny, model, 0.1, tol=tol, fused_loss=True)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("name", "loss"),
    [("MuRE", BCEWithLogitsLoss()), ("RotatE", CrossEntropyLoss()), ("RotH", CrossEntropyLoss())],
)
def test_fixed_batch_loss_equals_pykeen_lcwa_cuda(tiny: Dataset, name: str, loss: Loss) -> None:
    # on CUDA the fast scorers and RotH run the Triton pairwise-distance kernel
    model = _model(name, tiny, loss=loss).to("cuda")
    _check_fixed_batch(tiny, model, label_smoothing=0.1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["MuRE", "RotatE"])
def test_fixed_batch_fused_loss_equals_pykeen_lcwa_cuda(tiny: Dataset, name: str) -> None:
    # on CUDA the fused loss runs the Triton distance log-sum-exp kernel
    model = _model(name, tiny, loss=CrossEntropyLoss()).to("cuda")
    _check_fixed_batch(tiny, model, label_smoothing=0.1, fused_loss=True)


# ---------------------------------------------------------------------------------------------------------------
# through pipeline(): the same trajectory as PyKEEN's loop, loss decreases, checkpoints resume, stoppers run


def _run(
    tiny: Dataset,
    loop: str,
    epochs: int = 2,
    model: str = "MuRE",
    optimizer: str = "adam",
    loop_kwargs: dict[str, object] | None = None,
    **training: object,
) -> object:
    return pipeline(
        dataset=tiny,
        model=model,
        model_kwargs=dict(embedding_dim=8),
        loss="crossentropy",
        training_loop=loop,
        training_loop_kwargs=loop_kwargs,
        optimizer=optimizer,
        optimizer_kwargs=dict(lr=0.01 if optimizer == "adam" else 1.0),
        training_kwargs=dict(
            num_epochs=epochs,
            batch_size=64,
            label_smoothing=0.1,
            use_tqdm=False,
            pin_memory=False,  # PyKEEN's loop warns on CPU otherwise
            **training,
        ),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=1,
        device="cpu",
    )


@pytest.mark.parametrize("model", ["MuRE", "RotH"])
def test_pipeline_by_name_follows_pykeen_lcwa(tiny: Dataset, model: str) -> None:
    # SGD: Adam would blow float rounding in gradients that are 0 in exact arithmetic (e.g. the head bias under
    # softmax cross entropy) up to +-lr per step
    ours = _run(tiny, "fastlcwa", model=model, optimizer="sgd")
    theirs = _run(tiny, "lcwa", model=model, optimizer="sgd")
    assert type(ours.training_loop) is FastLCWATrainingLoop  # type: ignore[attr-defined]
    # same seed -> same shuffling, same batches, same objective: the same trajectory
    np.testing.assert_allclose(ours.losses, theirs.losses, rtol=1e-5)  # type: ignore[attr-defined]
    for p_ours, p_theirs in zip(ours.model.parameters(), theirs.model.parameters(), strict=True):  # type: ignore[attr-defined]
        torch.testing.assert_close(p_ours, p_theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["MuRE", "RotatE"])
def test_pipeline_fused_loss_follows_unfused(tiny: Dataset, model: str) -> None:
    fused = _run(tiny, "fastlcwa", model=model, optimizer="sgd", loop_kwargs=dict(fused_loss=True))
    plain = _run(tiny, "fastlcwa", model=model, optimizer="sgd")
    assert fused.training_loop.fused_loss and not plain.training_loop.fused_loss  # type: ignore[attr-defined]
    np.testing.assert_allclose(fused.losses, plain.losses, rtol=1e-5)  # type: ignore[attr-defined]
    for p_fused, p_plain in zip(fused.model.parameters(), plain.model.parameters(), strict=True):  # type: ignore[attr-defined]
        torch.testing.assert_close(p_fused, p_plain, rtol=1e-4, atol=1e-5)


def test_training_decreases_loss(tiny: Dataset) -> None:
    losses = _run(tiny, "fastlcwa", epochs=6).losses  # type: ignore[attr-defined]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 0.1, losses


def test_checkpoint_resume_through_pykeen(tiny: Dataset, tmp_path: Path) -> None:
    straight = _run(tiny, "fastlcwa", epochs=4).losses  # type: ignore[attr-defined]
    kwargs = dict(checkpoint_directory=tmp_path, checkpoint_name="ckpt.pt", checkpoint_frequency=0)
    first = _run(tiny, "fastlcwa", epochs=2, **kwargs).losses  # type: ignore[attr-defined]
    assert (tmp_path / "ckpt.pt").is_file() and len(first) == 2
    resumed = _run(tiny, "fastlcwa", epochs=4, **kwargs).losses  # type: ignore[attr-defined]
    np.testing.assert_allclose(resumed, straight, rtol=1e-6)


def test_early_stopper_runs(tiny: Dataset) -> None:
    result = pipeline(
        dataset=tiny,
        model="MuRE",
        model_kwargs=dict(embedding_dim=8),
        loss="crossentropy",
        training_loop="fastlcwa",
        stopper="early",
        stopper_kwargs=dict(frequency=1, patience=1, metric="mrr"),
        training_kwargs=dict(num_epochs=3, batch_size=64, use_tqdm=False, pin_memory=False),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=1,
        device="cpu",
    )
    assert len(result.stopper.results) >= 1  # type: ignore[attr-defined]


def test_bad_input_errors(tiny: Dataset) -> None:
    model = _model("MuRE", tiny)
    with pytest.raises(ValueError, match="loss_weighter"):
        FastLCWATrainingLoop(model=model, triples_factory=tiny.training, loss_weighter="relation")
    with pytest.raises(TypeError, match="fast_scoring must be a bool"):
        FastLCWATrainingLoop(model=model, triples_factory=tiny.training, fast_scoring="yes")
    with pytest.raises(TypeError, match="fused_loss must be a bool"):
        FastLCWATrainingLoop(model=model, triples_factory=tiny.training, fused_loss="yes")
    loop = FastLCWATrainingLoop(model=model, triples_factory=tiny.training)
    with pytest.raises(RuntimeError, match="no training data loader"):
        loop._process_batch(torch.tensor([0]), 0, 1)
    with pytest.raises(NotImplementedError, match="sampler='schlichtkrull' is not supported"):
        loop._create_training_data_loader(tiny.training, sampler="schlichtkrull", batch_size=4)
    other = local_kg_dataset("WN18RR", DATA, tiny=True, num_entities=200, create_inverse_triples=True)
    with pytest.raises(ValueError, match="targets, the model"):
        loop._create_training_data_loader(other.training, sampler=None, batch_size=4)


def test_fused_loss_names_what_it_supports(tiny: Dataset) -> None:
    ce = CrossEntropyLoss()
    for model, target, match in [
        (_model("DistMult", tiny, loss=ce), 2, r"model DistMult with target=2 \(supported: tail prediction"),
        (_model("MuRE", tiny, loss=ce), 0, r"model MuRE with target=0"),
        (_model("MuRE", tiny, loss=BCEWithLogitsLoss()), 2, r"loss BCEWithLogitsLoss.*CrossEntropyLoss"),
    ]:
        with pytest.raises(ValueError, match=match):
            FastLCWATrainingLoop(model=model, triples_factory=tiny.training, target=target, fused_loss=True)


def test_data_parallel_ranks_share_batches_and_draw_their_own_dropout(
    tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As rank 1 of 2 (collectives stubbed): the loader takes its batches from rank 0's shared sampler, and the
    rank reseeds torch from (seed, rank), so its dropout masks are its own."""
    monkeypatch.setattr("geoattn.kg.training.current", lambda: DistEnv(rank=1, world_size=2, local_rank=1))
    monkeypatch.setattr(torch.distributed, "broadcast", lambda tensor, src: None)
    loop, _ = _loops(_model("MuRE", tiny), tiny, target=2, fast_scoring=True)
    torch.manual_seed(7)
    loader = loop._create_training_data_loader(tiny.training, sampler=None, batch_size=16, shuffle=True)
    assert isinstance(loader.sampler, SharedRandomSampler)
    assert torch.initial_seed() == rank_seed(7, 1) != 7
