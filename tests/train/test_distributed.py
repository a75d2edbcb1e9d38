"""Data-parallel training (``geoattn.train.distributed``): two gloo processes under ``torchrun`` on CPU, the rank
environment, the TSP data's sharding, and KG training (PyKEEN's pipeline with geoattn's data-parallel 1-N loop)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from geoattn.train import load_checkpoint, train
from geoattn.train.distributed import (
    DistEnv,
    any_rank,
    gather_to_main,
    mean_metrics_over_ranks,
    mean_over_ranks,
    rank_seed,
    torchrun_command,
    torchrun_environ,
)
from geoattn.train.rng import data_generator
from geoattn.train.tasks.kg import CHECKPOINT_NAME as CHECKPOINT
from geoattn.train.tasks.kg import KGPipeline
from geoattn.train.tasks.tsp_policy import RandomTSPInstances

Compose = Callable[..., DictConfig]

# A tiny TSP policy, global batch 4 (2 instances per process), two curriculum stages.
TINY_DDP = [
    "experiment=tsp/pomo_curriculum",
    "model.embed_dim=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff_dim=32",
    "model.val_num_starts=4",
    "data.stages=[{n: 6, batch_size: 4, steps: 1},{n: 8, batch_size: 2, steps: null}]",
    "data.val_sizes=[20]",
    "data.val_count=2",
    "trainer.val_every=100",
    "trainer.ckpt_every=1",
    "trainer.log_every=1",
    "trainer.progress_bar=false",
    "trainer.device=cpu",
]

# Each rank runs three jobs through geoattn.train.train in one torchrun launch: 2 steps ("run"), 1 more resumed
# from it ("resumed") and 3 straight ("straight"); after the first it saves its parameters outside the run folder.
WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    import torch
    from hydra import compose, initialize_config_module

    from geoattn.train import launch

    out, overrides = Path(sys.argv[1]), sys.argv[2:]
    rank = int(os.environ["RANK"])
    # deterministic kernels (cuBLAS needs CUBLAS_WORKSPACE_CONFIG), so that a resumed run can equal a straight one
    # bit for bit on CUDA too; an op without a deterministic CUDA kernel raises instead of passing by chance
    torch.use_deterministic_algorithms(True)

    class Recording(launch.Trainer):
        def fit(self, **kwargs):
            result = super().fit(**kwargs)
            if self.step == 2:
                state = {"params": self.model.state_dict(), "shards": self.data.shards}
                torch.save(state, out / f"rank{rank}.pt")
            return result

    launch.Trainer = Recording
    for name, extra in (
        ("run", ["trainer.max_steps=2"]),
        ("resumed", ["trainer.max_steps=3", f"resume={out / 'run'}"]),
        ("straight", ["trainer.max_steps=3"]),
    ):
        with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*overrides, *extra])
        launch.train(cfg, run_dir=out / (name if rank == 0 else f"{name}_rank{rank}"))
    """
)


def _torchrun(nproc: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **torchrun_environ(),
        "OMP_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "1",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    command = torchrun_command(nproc, ["--monitor-interval=0.2", *args])
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices (NCCL)"),
            ],
        ),
    ],
)
def test_two_processes_train_in_step_and_resume_in_one(
    device: str, compose_train: Compose, tmp_path: Path
) -> None:
    """gloo on CPU (NCCL on two GPUs): identical weights on both ranks, rank 0's run folder, resume in one."""
    tiny = [*TINY_DDP, f"trainer.device={device}"]
    (tmp_path / "worker.py").write_text(WORKER)
    done = _torchrun(2, ["worker.py", str(tmp_path), *tiny], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True, map_location="cpu") for r in (0, 1)]
    assert ranks[0]["shards"] == ranks[1]["shards"] == 2  # each process drew half of every batch
    for name, param in ranks[0]["params"].items():
        assert torch.equal(param, ranks[1]["params"][name]), f"{name} differs between the ranks"
    # ... and they trained: a step at learning rate 0 keeps the initial weights, which differ
    fresh = train(compose_train(*tiny, "trainer.max_steps=1", "optimizer.lr=0"), run_dir=tmp_path / "lr0")
    initial = load_checkpoint(fresh.run_dir).model
    assert any(not torch.equal(initial[k], v) for k, v in ranks[0]["params"].items())

    # rank 0 alone wrote the run folder: one train row per step, a checkpoint per step, run.json
    run = tmp_path / "run"
    assert not any(p.name.endswith("_rank1") for p in tmp_path.iterdir())
    assert {p.name for p in run.iterdir()} == {"config.yaml", "run.json", "metrics.jsonl", "checkpoints"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(1, "train"), (2, "train"), (2, "val")]
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "completed"
    checkpoint = load_checkpoint(run)
    assert checkpoint.step == 2 and checkpoint.data["world_size"] == 2 and len(checkpoint.data["ranks"]) == 1
    for name, param in checkpoint.model.items():  # the unwrapped model's keys, no DDP prefix
        assert torch.equal(param, ranks[0]["params"][name])

    # resuming on 2 processes continues every rank's stream exactly
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert straight.step == resumed.step == 3
    for name, param in straight.model.items():
        assert torch.equal(param, resumed.model[name]), f"{name}: the resumed run left the straight one"

    # the 2-process checkpoint resumes in one process
    one = train(compose_train(*tiny, "trainer.max_steps=3", f"resume={run}"), run_dir=tmp_path / "one")
    assert one.step == 3 and "ranks" not in load_checkpoint(one.run_dir).data
    info = json.loads((tmp_path / "one" / "run.json").read_text())
    assert "world_size" not in info and info["start_step"] == 2 and info["status"] == "completed"


def test_dist_env_from_environ() -> None:
    assert DistEnv.from_environ({}) == DistEnv(rank=0, world_size=1, local_rank=0)
    env = DistEnv.from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.is_main, env.is_distributed) == (
        3,
        4,
        1,
        False,
        True,
    )
    for bad, match in (
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not below WORLD_SIZE=2"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK='-1'"),
    ):
        with pytest.raises(ValueError, match=match):
            DistEnv.from_environ(bad)


def test_one_process_collectives_are_identities() -> None:
    assert mean_over_ranks(torch.tensor(2.5)) == 2.5
    assert any_rank(True, torch.device("cpu")) and not any_rank(False, torch.device("cpu"))
    assert gather_to_main({"a": 1}) == [{"a": 1}]
    assert mean_metrics_over_ranks({"x": 1.0}) == {"x": 1.0}


def test_rank_streams_and_seeds_differ_and_rank_zero_is_the_single_process_one() -> None:
    assert rank_seed(7, 0) == 7 and len({rank_seed(7, r) for r in range(4)}) == 4
    draws = [torch.rand(8, generator=data_generator(7, r)) for r in range(3)]
    assert torch.equal(draws[0], torch.rand(8, generator=data_generator(7)))
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])


def test_tsp_data_shards_the_global_batch() -> None:
    data = RandomTSPInstances([{"n": 5, "batch_size": 6, "steps": 1}, {"n": 7, "batch_size": 4}])
    data.shard(1, 2)
    batches = data.train_batches(torch.Generator().manual_seed(0))
    assert next(batches)["coords"].shape == (3, 5, 2) and next(batches)["coords"].shape == (2, 7, 2)
    with pytest.raises(ValueError, match=r"stages\[1\] have batch_size \[4\], not divisible by the 3"):
        data.shard(0, 3)
    with pytest.raises(ValueError, match=r"shard rank must be in \[0, 2\)"):
        data.shard(2, 2)


def test_kg_runner_needs_the_data_parallel_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"training_loop='lcwa' trains in one process, but WORLD_SIZE=2"):
        KGPipeline(training_loop="lcwa")({"seed": 0, "resume": None}, run_dir=tmp_path / "kg")
    assert not (tmp_path / "kg").exists()


# Every rank runs one KG job through geoattn.train.launch in the same run folder (as `torchrun -m geoattn.train`).
KG_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from hydra import compose, initialize_config_module

    from geoattn.train import launch

    with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=sys.argv[2:])
    launch.train(cfg, run_dir=Path(sys.argv[1]))
    """
)
KG_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "kg"
# A tiny FB15k-237 slice, MuRE, two epochs of global batches of 99 pairs (shards of 50 and 49), the early stopper
# evaluating after every epoch (on rank 0, broadcast).
TINY_KG_DDP = [
    "experiment=kg/fb15k237_mure",
    f"data.root={KG_DATA}",
    "data.tiny=true",
    "model.embedding_dim=8",
    "runner.num_epochs=2",
    "runner.batch_size=99",
    "runner.device=cpu",
    "runner.checkpoint_frequency=0",
    "runner.stopper_kwargs.frequency=1",
    "runner.stopper_kwargs.patience=5",
]


@pytest.mark.skipif(not (KG_DATA / "FB15k-237").is_dir(), reason=f"no KG data under {KG_DATA}")
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_kg_two_processes_train_as_one_and_resume_in_one(compose_train: Compose, tmp_path: Path) -> None:
    """Two gloo processes train the same model as one process (same batches, summed gradients); rank 0 alone
    writes the run folder, and its PyKEEN checkpoint continues in one process."""
    (tmp_path / "worker.py").write_text(KG_WORKER)
    two = tmp_path / "two"
    done = _torchrun(2, ["worker.py", str(two), *TINY_KG_DDP], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    one = train(compose_train(*TINY_KG_DDP), run_dir=tmp_path / "one").run_dir

    def losses(run: Path) -> list[float]:
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    info_two, info_one = (json.loads((run / "run.json").read_text()) for run in (two, one))
    assert info_two["world_size"] == 2 and info_one["world_size"] == 1
    assert len(losses(two)) == 2 and losses(two) == pytest.approx(losses(one), rel=1e-5)
    for split in ("validation", "test"):
        assert info_two[split] == pytest.approx(info_one[split], abs=1e-6), split
    assert info_two["early_stopping"]["values"] == pytest.approx(
        info_one["early_stopping"]["values"], abs=1e-6
    )
    assert {p.name for p in two.iterdir()} == {"config.yaml", "run.json", "metrics.jsonl", "checkpoints"}
    assert {p.name for p in (two / "checkpoints").iterdir()} <= {
        CHECKPOINT,
        "best-model.pt",
        "best-model.rank1.pt",
    }

    more = train(
        compose_train(*TINY_KG_DDP, "runner.num_epochs=3", f"resume={two}"), run_dir=tmp_path / "more"
    )
    info = json.loads((more.run_dir / "run.json").read_text())
    assert info["num_epochs"] == 3 and info["resumed_from"] == str(two) and 0 < info["test"]["mrr"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(not (KG_DATA / "FB15k-237").is_dir(), reason=f"no KG data under {KG_DATA}")
def test_throughput_benchmark_smoke_runs_the_cli_under_torchrun(tmp_path: Path) -> None:
    """``benchmarks/ddp_throughput.py --smoke``: ``torchrun -m geoattn.train`` with 1 and 2 gloo processes, for
    the TSP policy and for a KG slice."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "ddp_throughput.py"
    env = {**torchrun_environ(), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        str(script),
        "--smoke",
        "--work-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "r.md"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| 4 ")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("1", "4"), ("2", "2")]  # processes, batch each
    assert all(float(r[4]) > 0 for r in rows)  # instances/s
    assert "NCCL_NVLS_ENABLE=0" in (tmp_path / "r.md").read_text()
    # the 2-process run folder: Hydra's files and the log once (rank 0), one metrics row per logged step
    two = tmp_path / "b4_p2"
    assert {p.name for p in two.iterdir()} == {
        ".hydra",
        "main.log",
        "config.yaml",
        "run.json",
        "metrics.jsonl",
        "checkpoints",
    }
    info = json.loads((two / "run.json").read_text())
    assert info["world_size"] == 2 and info["status"] == "completed"
    steps = [json.loads(line)["step"] for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3]
    # KG: one row per process count, the same global batch; two processes learnt what one did
    kg = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| fb15k237_mure ")]
    assert [(r[1].strip(), r[2].strip()) for r in kg] == [("1", "64 (64 each)"), ("2", "64 (32 each)")]
    assert all(float(r[4].replace(",", "")) > 0 for r in kg)  # pairs/s
    assert float(kg[0][7]) == pytest.approx(float(kg[1][7]), abs=1e-3)  # test MRR
    assert json.loads((tmp_path / "fb15k237_mure_p2" / "run.json").read_text())["world_size"] == 2


def test_torchrun_environ_turns_nvls_off_and_drops_the_parent_job() -> None:
    env = torchrun_environ({"RANK": "1", "WORLD_SIZE": "2", "NCCL_NVLS_ENABLE": "1", "PATH": "/bin"})
    assert env == {"NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": "1", "PATH": "/bin"}
    assert torchrun_environ({"OMP_NUM_THREADS": "4"})["OMP_NUM_THREADS"] == "4"
    assert torchrun_command(2, ["-m", "geoattn.train"])[-4:] == [
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "geoattn.train",
    ]
