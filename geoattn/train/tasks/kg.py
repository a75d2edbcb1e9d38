"""Knowledge-graph completion with PyKEEN's own pipeline, run from a ``geoattn-train`` config.

A KG experiment (``configs/experiment/kg/``) fills four nodes, and :func:`geoattn.train.train` hands the job to
the ``runner`` (:class:`KGPipeline`) instead of geoattn's loop, because training, negative sampling, losses,
early stopping and filtered rank-based evaluation are PyKEEN's:

- ``model`` (``configs/model/kg.yaml``): ``name`` (a PyKEEN model name; after ``import geoattn.kg`` also ``CAT``,
  ``RotH``, ``AttH``, ``MuRP``, ``RefH``) and the model's keyword arguments;
- ``data`` (``configs/data/kg.yaml``): ``name`` (``WN18RR`` or ``FB15k-237``) and ``root``: ``null`` uses
  PyKEEN's dataset class (downloaded on first use); a folder holding ``<name>/{train,valid,test}.txt`` reads
  local files (:func:`geoattn.kg.local_kg_dataset`; ``GEOATTN_KG_DATA`` sets it, e.g. ``../shared/data/kg``);
  ``tiny: true`` takes a small slice for smoke runs;
- ``optimizer``: a ``_target_`` optimizer config (``configs/optimizer/``), given to PyKEEN as class and kwargs
  (``optimizer=riemannian_adam`` for ``model.entity_storage=manifold``);
- ``runner`` (``configs/runner/kg_pipeline.yaml``: 1-N training; ``kg_sampled.yaml``: sampled negatives, the
  protocol of Chami et al. 2020's released scripts): the loop settings of :class:`KGPipeline` (the ``trainer``
  node, geoattn's loop settings, is not used by KG jobs).

The run folder gets ``config.yaml``, ``run.json`` (git SHA, versions, seed; at the end the filtered validation
and test metrics, training time, parameter count and the number of test triples dropped for entities unseen in
training; with early stopping also the validation curve it saw and whether it stopped — PyKEEN reports the
best epoch's weights when it stops, the last epoch's otherwise), ``metrics.jsonl`` (the loss per epoch and, for
the epochs trained in this process, ``elapsed_s``: seconds from the start of training to the epoch's end) and
PyKEEN's checkpoint ``checkpoints/pykeen.pt``. Resuming:
``resume=<earlier run folder>`` continues from that folder's checkpoint (PyKEEN restores model, optimiser,
stopper and RNG state). PyKEEN writes and reads its checkpoints itself with ``torch.load(weights_only=False)``:
they are trusted local files of your own runs, never files from elsewhere.

Several GPUs: under ``torchrun`` with ``WORLD_SIZE > 1`` every process runs the same pipeline on
``cuda:LOCAL_RANK`` inside the job's process group (:func:`~geoattn.train.distributed.process_group`), and
geoattn's ``fastlcwa`` loop (required there) trains data-parallel: each rank scores its share of every global
batch and the gradients are summed before each step (:mod:`geoattn.kg.distributed`), so ``runner.batch_size`` is
the global batch and the run takes one GPU's steps. PyKEEN's filtered rank-based evaluation is
single-process: it runs on rank 0 and its results are broadcast (:class:`~geoattn.kg.distributed.RankZeroEvaluator`;
the early stopper decides the same on every rank). Rank 0 alone writes the run folder and PyKEEN's checkpoint,
which is the one-process checkpoint: a run resumes on any number of GPUs. (PyKEEN 1.11's PyTorch Lightning
modules, ``pykeen.contrib.lightning``, also train on several GPUs, but validate by the loss only, without
filtered ranks, checkpoints or the ``fastlcwa`` loop.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class

from ..distributed import DistEnv, current, process_group
from ..metadata import run_info, utc_now
from ..run_dir import RunDir
from ..trainer import TrainResult, resolve_device

__all__ = ["CHECKPOINT_NAME", "KGPipeline", "KGResult", "dropped_test_triples", "load_kg_dataset"]

#: File name of PyKEEN's training checkpoint under ``<run dir>/checkpoints``.
CHECKPOINT_NAME = "pykeen.pt"
# PyKEEN's rank-based metric names -> the names in run.json
_METRICS = {
    "mrr": "both.realistic.inverse_harmonic_mean_rank",
    "hits_at_1": "both.realistic.hits_at_1",
    "hits_at_3": "both.realistic.hits_at_3",
    "hits_at_10": "both.realistic.hits_at_10",
}


def load_kg_dataset(data: Mapping[str, Any], *, create_inverse_triples: bool) -> Any:
    """The PyKEEN dataset of a ``data`` node: PyKEEN's class by name when ``root`` is ``None``, else local files.

    Keys: ``name``, ``root`` (``None`` or a folder), ``tiny``, ``num_entities``, ``num_triples``, ``slice_seed``
    (the last three for ``tiny`` only, which needs ``root``).
    """
    from pykeen.datasets import get_dataset

    from geoattn.kg import local_kg_dataset

    name, root = data["name"], data.get("root")
    if root is None:
        if data.get("tiny"):
            raise ValueError(f"data.tiny=true needs data.root (a folder of local files), got root={root!r}")
        return get_dataset(dataset=name, dataset_kwargs=dict(create_inverse_triples=create_inverse_triples))
    return local_kg_dataset(
        name,
        root,
        tiny=bool(data.get("tiny", False)),
        num_entities=int(data.get("num_entities", 100)),
        num_triples=int(data.get("num_triples", 500)),
        seed=int(data.get("slice_seed", 0)),
        create_inverse_triples=create_inverse_triples,
    )


def dropped_test_triples(data: Mapping[str, Any], dataset: Any) -> int | None:
    """Test triples of ``<root>/<name>/test.txt`` that the dataset dropped because an entity is unseen in
    training (PyKEEN's protocol); ``None`` for PyKEEN's downloaded datasets and for tiny slices."""
    from geoattn.kg.datasets import LOCAL_KG_DATASETS

    if data.get("root") is None or data.get("tiny"):
        return None
    folder = LOCAL_KG_DATASETS[str(data["name"]).lower().replace("-", "").replace("_", "")]
    path = Path(data["root"]) / folder / "test.txt"
    with path.open(encoding="utf-8") as f:
        lines = sum(1 for line in f if line.strip())
    return lines - int(dataset.testing.num_triples)


@dataclass
class KGResult:
    """What one KG run measured (also written to ``run.json``)."""

    validation: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    num_parameters: int
    num_epochs: int
    losses: list[float]
    epoch_seconds: dict[int, float]
    dropped_test_triples: int | None
    early_stopping: dict[str, Any] | None = None


def early_stopping_record(stopper: Any) -> dict[str, Any] | None:
    """What PyKEEN's early stopper saw: its validation ``metric`` at every evaluation (``epochs``: every
    ``frequency``-th, from the start of the run also when it was resumed; ``values``), its ``best_epoch`` and
    whether it ``stopped`` training. ``best_epoch`` is the last evaluation that beat the best so far by more than
    ``relative_delta`` (PyKEEN's default: 1% relative), so it need not be the curve's peak. When it stopped, PyKEEN
    restored the best epoch's weights, so the reported model is that epoch's; when training ran its epochs out,
    the reported model is the last epoch's, whatever the curve. ``None`` without an early stopper."""
    from pykeen.stoppers import EarlyStopper

    if not isinstance(stopper, EarlyStopper):
        return None
    values = [float(v) for v in stopper.results]
    return {
        "metric": stopper.metric,
        "frequency": stopper.frequency,
        "epochs": [stopper.frequency * (i + 1) for i in range(len(values))],
        "values": values,
        "best_epoch": stopper.best_epoch,
        "relative_delta": float(stopper.relative_delta),
        "stopped": bool(stopper.stopped),
    }


class KGPipeline:
    """Runs PyKEEN's ``pipeline`` for the ``model``/``data``/``optimizer`` nodes of a resolved config.

    Args:
        training_loop: PyKEEN training loop name (``"lcwa"``: 1-N; ``"fastlcwa"``: geoattn's 1-N loop with labels
            on the device; ``"slcwa"``: negative sampling). Default ``"lcwa"``. Their checkpoints are written
            atomically (:mod:`geoattn.kg.checkpoints`), so a run killed at any moment can resume.
        num_epochs: epochs (a resumed run continues up to this many). Default ``100``.
        batch_size: training batch size. Default ``1024``.
        label_smoothing: label smoothing of the 1-N loops. Default ``0.1``.
        loss: PyKEEN loss name. Default ``"crossentropy"``.
        loss_kwargs: its keyword arguments. Default ``None``.
        negative_sampler: PyKEEN negative sampler name (``"basic"``: corrupt the head or the tail uniformly);
            ``training_loop="slcwa"`` only. ``None``: PyKEEN's default (``"basic"``). Default ``None``.
        negative_sampler_kwargs: its keyword arguments, e.g. ``{num_negs_per_pos: 50}``; ``"slcwa"`` only.
            Default ``None``.
        create_inverse_triples: train with inverse relations (head prediction = tail prediction of the inverse).
            Default ``True``.
        stopper: ``None`` or ``"early"`` (PyKEEN's early stopping on the validation split). Default ``None``.
        stopper_kwargs: e.g. ``{frequency: 10, patience: 3}``. Default ``None``.
        evaluation_batch_size: ``None`` lets PyKEEN pick. Default ``None``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` ... Default ``"auto"``.
        checkpoint_frequency: minutes between PyKEEN checkpoints (``0``: every epoch). Default ``10``.
        evaluate_validation: also evaluate the final model on the validation split. Default ``True``.
        use_tqdm: progress bars. Default ``False``.
    """

    def __init__(
        self,
        *,
        training_loop: str = "lcwa",
        num_epochs: int = 100,
        batch_size: int = 1024,
        label_smoothing: float = 0.1,
        loss: str = "crossentropy",
        loss_kwargs: Mapping[str, Any] | None = None,
        negative_sampler: str | None = None,
        negative_sampler_kwargs: Mapping[str, Any] | None = None,
        create_inverse_triples: bool = True,
        stopper: str | None = None,
        stopper_kwargs: Mapping[str, Any] | None = None,
        evaluation_batch_size: int | None = None,
        device: str = "auto",
        checkpoint_frequency: int = 10,
        evaluate_validation: bool = True,
        use_tqdm: bool = False,
    ) -> None:
        for arg, value in (("num_epochs", num_epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"runner.{arg} must be a positive int, got {value!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"runner.label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if training_loop != "slcwa" and (negative_sampler is not None or negative_sampler_kwargs):
            raise ValueError(
                "runner.negative_sampler and runner.negative_sampler_kwargs are for training_loop=slcwa (training "
                f"with sampled negatives); training_loop={training_loop!r} scores every entity"
            )
        self.training_loop = training_loop
        self.num_epochs = num_epochs
        self.batch_size = batch_size
        self.label_smoothing = float(label_smoothing)
        self.loss = loss
        self.loss_kwargs = dict(loss_kwargs or {})
        self.negative_sampler = negative_sampler
        self.negative_sampler_kwargs = dict(negative_sampler_kwargs or {})
        self.create_inverse_triples = create_inverse_triples
        self.stopper = stopper
        self.stopper_kwargs = dict(stopper_kwargs or {})
        self.evaluation_batch_size = evaluation_batch_size
        self.device = device
        self.checkpoint_frequency = checkpoint_frequency
        self.evaluate_validation = evaluate_validation
        self.use_tqdm = use_tqdm

    def run(
        self,
        *,
        model: Mapping[str, Any],
        data: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        seed: int,
        checkpoint_directory: Path,
    ) -> KGResult:
        """Train and evaluate; PyKEEN's checkpoint in ``checkpoint_directory`` is continued when present."""
        from pykeen.pipeline import pipeline

        import geoattn.kg  # noqa: F401  (registers geoattn's models and geoopt's optimisers with PyKEEN)
        from geoattn.kg.checkpoints import atomic_training_loop
        from geoattn.kg.distributed import RankZeroEvaluator
        from geoattn.kg.training import EpochClock

        env = current()

        model_kwargs = dict(model)
        model_name = model_kwargs.pop("name")
        optimizer_kwargs = {k: v for k, v in optimizer.items() if k not in ("_target_", "_partial_")}
        dataset = load_kg_dataset(data, create_inverse_triples=self.create_inverse_triples)
        device = None if self.device == "auto" else self.device
        # one GPU per process of a data-parallel job: process_group selected cuda:LOCAL_RANK
        if env.is_distributed and resolve_device(self.device).type == "cuda":
            device = f"cuda:{torch.cuda.current_device()}"
        training_kwargs: dict[str, Any] = dict(
            num_epochs=self.num_epochs,
            batch_size=self.batch_size,
            use_tqdm=self.use_tqdm,
            checkpoint_directory=checkpoint_directory,
            checkpoint_name=CHECKPOINT_NAME,
            checkpoint_frequency=self.checkpoint_frequency,
            callbacks=(clock := EpochClock()),
        )
        sampling: dict[str, Any] = {}
        if self.training_loop == "slcwa":
            sampling = dict(
                negative_sampler=self.negative_sampler, negative_sampler_kwargs=self.negative_sampler_kwargs
            )
        else:
            training_kwargs["label_smoothing"] = self.label_smoothing
        stopper_kwargs = dict(self.stopper_kwargs)
        if self.stopper == "early":  # keep the best-epoch weights in the run folder, not in ~/.data/pykeen
            # each rank of a data-parallel job keeps its own copy
            best = "best-model.pt" if env.is_main else f"best-model.rank{env.rank}.pt"
            stopper_kwargs.setdefault("best_model_path", checkpoint_directory / best)
        evaluation_kwargs: dict[str, Any] = dict(
            use_tqdm=self.use_tqdm, batch_size=self.evaluation_batch_size
        )
        result = pipeline(
            dataset=dataset,
            model=model_name,
            model_kwargs=model_kwargs,
            optimizer=get_class(optimizer["_target_"]),
            optimizer_kwargs=optimizer_kwargs,
            loss=self.loss,
            loss_kwargs=self.loss_kwargs,
            training_loop=atomic_training_loop(self.training_loop),
            training_kwargs=training_kwargs,
            **sampling,
            stopper=self.stopper,
            stopper_kwargs=stopper_kwargs,
            evaluator=RankZeroEvaluator,
            evaluation_kwargs=evaluation_kwargs,
            random_seed=seed,
            device=device,
        )
        test = {key: float(result.metric_results.get_metric(name)) for key, name in _METRICS.items()}
        validation: dict[str, float] = {}
        if self.evaluate_validation and dataset.validation is not None:
            known = [dataset.training.mapped_triples, dataset.testing.mapped_triples]
            metrics = RankZeroEvaluator().evaluate(
                result.model,
                dataset.validation.mapped_triples,
                additional_filter_triples=known,
                use_tqdm=self.use_tqdm,
                batch_size=self.evaluation_batch_size,
            )
            validation = {key: float(metrics.get_metric(name)) for key, name in _METRICS.items()}
        return KGResult(
            validation=validation,
            test=test,
            train_seconds=float(result.train_seconds),
            num_parameters=int(result.model.num_parameters),
            num_epochs=len(result.losses),
            losses=[float(loss) for loss in result.losses],
            epoch_seconds=dict(clock.elapsed),
            dropped_test_triples=dropped_test_triples(data, dataset),
            early_stopping=early_stopping_record(result.stopper),
        )

    def __call__(self, config: Mapping[str, Any], *, run_dir: str | os.PathLike[str]) -> TrainResult:
        """Run the job of a resolved ``geoattn-train`` config in ``run_dir`` (see the module docstring)."""
        env = DistEnv.from_environ()
        if env.is_distributed and self.training_loop != "fastlcwa":
            raise ValueError(
                f"runner.training_loop={self.training_loop!r} trains in one process, but WORLD_SIZE="
                f"{env.world_size} (torchrun); data-parallel KG training needs runner.training_loop=fastlcwa, or "
                "start the job without torchrun"
            )
        with process_group(resolve_device(self.device)):
            return self._job(config, RunDir(run_dir, create=env.is_main), env)

    def _job(self, config: Mapping[str, Any], run: RunDir, env: DistEnv) -> TrainResult:
        """The run of :meth:`__call__` (rank 0 writes ``run``; the other ranks only train)."""
        from omegaconf import OmegaConf

        resume = config.get("resume")
        checkpoints = (Path(resume) if resume else run.path) / "checkpoints"
        if resume and not (checkpoints / CHECKPOINT_NAME).is_file():
            raise FileNotFoundError(
                f"resume={resume!r}: no PyKEEN checkpoint {checkpoints / CHECKPOINT_NAME}"
            )
        if env.is_main:
            run.write_config(OmegaConf.to_yaml(OmegaConf.create(dict(config))))
            run.write_info(
                run_info(seed=config["seed"], device=self.device, resumed_from=resume, start_step=0)
            )
        start = time.perf_counter()
        try:
            result = self.run(
                model=config["model"],
                data=config["data"],
                optimizer=config["optimizer"],
                seed=config["seed"],
                checkpoint_directory=checkpoints,
            )
        except BaseException as e:
            if env.is_main:
                run.update_info(status="failed", error=f"{type(e).__name__}: {e}", end_time=utc_now())
            raise
        if env.is_main:
            for epoch, loss in enumerate(result.losses, start=1):
                timed = {"elapsed_s": result.epoch_seconds[epoch]} if epoch in result.epoch_seconds else {}
                run.append_metrics({"epoch": epoch, "loss": loss, **timed})
            in_metrics = ("losses", "epoch_seconds")
            measured = {key: value for key, value in asdict(result).items() if key not in in_metrics}
            run.update_info(
                status="finished",
                end_time=utc_now(),
                wall_seconds=time.perf_counter() - start,
                world_size=env.world_size,
                **measured,
            )
        return TrainResult(
            run_dir=run.path,
            step=result.num_epochs,
            last_checkpoint=checkpoints / CHECKPOINT_NAME,
            val_metrics=result.validation,
        )
