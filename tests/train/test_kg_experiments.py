"""``geoattn-train experiment=kg/...``: every KG experiment composes into a valid PyKEEN job; one runs and resumes."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig
from pykeen.datasets.base import Dataset
from pykeen.models import model_resolver
from pykeen.optimizers import optimizer_resolver

import geoattn.kg
from geoattn.kg.checkpoints import AtomicSLCWATrainingLoop
from geoattn.train import TrainResult, resolve_config, train
from geoattn.train.tasks.kg import CHECKPOINT_NAME, KGPipeline, dropped_test_triples, load_kg_dataset

Compose = Callable[..., DictConfig]
KG_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "kg"
EXPERIMENTS = sorted(
    p.name.removesuffix(".yaml")
    for p in files("geoattn.configs").joinpath("experiment", "kg").iterdir()
    if p.name.endswith(".yaml")
)
# A tiny FB15k-237 slice, one small layer, one epoch on the CPU.
TINY_KG = [
    f"data.root={KG_DATA}",
    "data.tiny=true",
    "runner.num_epochs=1",
    "runner.batch_size=128",
    "runner.device=cpu",
    "runner.checkpoint_frequency=0",
    "model.embedding_dim=8",
    "model.interaction_kwargs.num_layers=1",
    "model.interaction_kwargs.num_heads=2",
]
needs_data = pytest.mark.skipif(not (KG_DATA / "FB15k-237").is_dir(), reason=f"no KG data under {KG_DATA}")


def test_the_results_table_rows_exist() -> None:
    rows = {f"{d}_{m}" for d in ("wn18rr", "fb15k237") for m in ("cat", "roth", "atth", "mure", "rotate")}
    ablations = {
        f"{d}_cat_{g}" for d in ("wn18rr", "fb15k237") for g in ("euclidean", "hyperbolic", "spherical")
    }
    assert rows | ablations <= set(EXPERIMENTS)


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    data = {"name": "FB15k-237", "root": str(KG_DATA), "tiny": True}
    return load_kg_dataset(data, create_inverse_triples=True)


@needs_data
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_builds_its_pykeen_model(name: str, compose_train: Compose, tiny: Dataset) -> None:
    """Each experiment resolves, names a registered model and optimiser, and the model builds on a tiny slice."""
    resolved = resolve_config(compose_train(f"experiment=kg/{name}", f"data.root={KG_DATA}"))
    assert resolved["data"]["name"] == ("WN18RR" if name.startswith("wn18rr") else "FB15k-237")
    assert isinstance(instantiate(resolved["runner"]), KGPipeline)
    model = dict(resolved["model"])
    cls = model_resolver.lookup(model.pop("name"))
    optimizer_cls = instantiate(resolved["optimizer"]).func
    assert optimizer_resolver.lookup(optimizer_cls.__name__) is optimizer_cls
    if model.get("entity_storage") == "manifold":
        assert optimizer_cls.__name__ == "RiemannianAdam"
    instance = cls(triples_factory=tiny.training, **model)
    assert instance.num_parameters > 0
    if cls is geoattn.kg.CAT:
        expected = (model["interaction_kwargs"].get("geometries") or ["cat"])[0]
        assert instance.interaction.attention == expected


@needs_data
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_run_writes_metrics_and_resumes(compose_train: Compose, tmp_path: Path) -> None:
    """One epoch on a tiny slice writes run.json with validation/test metrics and a PyKEEN checkpoint;
    resume=<that run> continues from it to the second epoch."""
    first = train(compose_train("experiment=kg/fb15k237_cat", *TINY_KG), run_dir=tmp_path / "a")
    assert isinstance(first, TrainResult) and first.step == 1
    assert first.last_checkpoint == tmp_path / "a" / "checkpoints" / CHECKPOINT_NAME
    assert first.last_checkpoint.is_file()
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["status"] == "finished" and info["seed"] == 0
    for split in ("validation", "test"):
        assert set(info[split]) == {"mrr", "hits_at_1", "hits_at_3", "hits_at_10"}
        assert 0.0 < info[split]["mrr"] <= 1.0
        assert info[split]["hits_at_1"] <= info[split]["hits_at_3"] <= info[split]["hits_at_10"]
    assert info["num_parameters"] > 0 and info["train_seconds"] > 0
    assert info["dropped_test_triples"] is None  # tiny slices keep only triples of seen entities
    (first_row,) = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    first_loss = first_row["loss"]
    assert 0 < first_row["elapsed_s"] <= info["train_seconds"] + 1

    resumed = train(
        compose_train(
            "experiment=kg/fb15k237_cat", *TINY_KG, "runner.num_epochs=2", f"resume={tmp_path / 'a'}"
        ),
        run_dir=tmp_path / "b",
    )
    assert resumed.step == 2
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["loss"] == pytest.approx(first_loss)  # epoch 1 came from the checkpoint
    assert "elapsed_s" not in rows[0] and rows[1]["elapsed_s"] > 0  # only epoch 2 was timed in this process
    assert json.loads((tmp_path / "b" / "run.json").read_text())["resumed_from"] == str(tmp_path / "a")


def test_resume_without_checkpoint_fails(compose_train: Compose, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no PyKEEN checkpoint"):
        train(
            compose_train("experiment=kg/wn18rr_cat", *TINY_KG, f"resume={tmp_path}"), run_dir=tmp_path / "r"
        )


@needs_data
def test_dropped_test_triples_counts_unseen_entities() -> None:
    """WN18RR (SOURCE.md): 3,134 test triples, 210 with an entity unseen in training, so PyKEEN keeps 2,924."""
    data = {"name": "WN18RR", "root": str(KG_DATA), "tiny": False}
    dataset = load_kg_dataset(data, create_inverse_triples=False)
    assert dataset.testing.num_triples == 2924
    assert dropped_test_triples(data, dataset) == 210
    assert dropped_test_triples({**data, "root": None}, dataset) is None


def test_negative_sampler_is_refused_by_the_1n_loops() -> None:
    with pytest.raises(ValueError, match=r"negative_sampler.*training_loop=slcwa.*'fastlcwa'"):
        KGPipeline(training_loop="fastlcwa", negative_sampler="basic")
    with pytest.raises(ValueError, match="negative_sampler_kwargs"):
        KGPipeline(training_loop="lcwa", negative_sampler_kwargs={"num_negs_per_pos": 50})


@needs_data
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
@pytest.mark.filterwarnings(
    "ignore:Training instances are always shuffled:DeprecationWarning"
)  # PyKEEN's sLCWA
def test_sampled_protocol_trains_with_its_negatives_and_optimiser(
    compose_train: Compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """experiment=kg/fb15k237_roth_kgemb reaches PyKEEN as sLCWA with 50 negatives per triple, the softplus
    loss and Adagrad at 0.05, and trains an epoch on a tiny slice."""
    import pykeen.pipeline

    seen: dict[str, object] = {}
    real = pykeen.pipeline.pipeline

    def spy(**kwargs: object) -> object:
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(pykeen.pipeline, "pipeline", spy)
    tiny_run = [o for o in TINY_KG if not o.startswith("model.interaction_kwargs")]
    result = train(compose_train("experiment=kg/fb15k237_roth_kgemb", *tiny_run), run_dir=tmp_path / "r")
    assert result.step == 1
    assert (seen["training_loop"], seen["loss"], seen["negative_sampler"]) == (
        AtomicSLCWATrainingLoop,  # PyKEEN's "slcwa" with atomic checkpoints
        "softplus",
        "basic",
    )
    assert seen["negative_sampler_kwargs"] == {"num_negs_per_pos": 50}
    assert "label_smoothing" not in seen["training_kwargs"]  # type: ignore[operator]
    assert seen["optimizer"].__name__ == "Adagrad" and seen["optimizer_kwargs"] == {"lr": 0.05}  # type: ignore[attr-defined]
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert 0.0 < info["test"]["mrr"] <= 1.0


@needs_data
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_run_records_the_early_stopping_curve_across_a_resume(compose_train: Compose, tmp_path: Path) -> None:
    """With an evaluation every epoch, run.json holds the stopper's validation curve; a resumed run continues the
    curve from the checkpoint (epochs counted from the start) instead of starting a new one."""
    tiny_run = [o for o in TINY_KG if not o.startswith("model.interaction_kwargs")]
    every_epoch = ["runner.stopper_kwargs.frequency=1", "runner.stopper_kwargs.patience=5"]
    train(compose_train("experiment=kg/fb15k237_mure", *tiny_run, *every_epoch), run_dir=tmp_path / "a")
    first = json.loads((tmp_path / "a" / "run.json").read_text())["early_stopping"]
    assert first["metric"] == "inverse_harmonic_mean_rank" and first["frequency"] == 1
    assert first["epochs"] == [1] and len(first["values"]) == 1 and 0.0 < first["values"][0] <= 1.0
    assert first["best_epoch"] == 1 and first["stopped"] is False and first["relative_delta"] == 0.01

    train(
        compose_train(
            "experiment=kg/fb15k237_mure",
            *tiny_run,
            *every_epoch,
            "runner.num_epochs=3",
            f"resume={tmp_path / 'a'}",
        ),
        run_dir=tmp_path / "b",
    )
    resumed = json.loads((tmp_path / "b" / "run.json").read_text())["early_stopping"]
    assert resumed["epochs"] == [1, 2, 3] and resumed["values"][0] == pytest.approx(first["values"][0])
    assert resumed["best_epoch"] in resumed["epochs"] and resumed["stopped"] is False


def test_early_stopping_record_is_none_without_an_early_stopper() -> None:
    from pykeen.stoppers import NopStopper

    from geoattn.train.tasks.kg import early_stopping_record

    assert early_stopping_record(None) is None
    assert early_stopping_record(NopStopper()) is None
