"""``geoattn-train``: the single Hydra entry point for training (``python -m geoattn.train.main`` too).

Configs come from the packaged ``geoattn.configs`` (``pkg://geoattn.configs``); the run folder is Hydra's
``hydra.run.dir``. Examples::

    geoattn-train experiment=tree_embedding_hyperbolic
    geoattn-train experiment=tree_embedding_euclidean trainer.max_steps=200 seed=1
    geoattn-train experiment=tree_embedding_hyperbolic resume=outputs/2024-01-01/12-00-00
    geoattn-train --cfg job                     # print the composed config
    torchrun --standalone --nproc-per-node=2 -m geoattn.train experiment=tsp/pomo_curriculum hydra.run.dir=runs/tsp

Under ``torchrun`` every process runs this entry point; the processes with ``RANK > 0`` neither write Hydra's
``.hydra/`` folder nor its log file, and log nothing (``hydra.output_subdir=null hydra/job_logging=disabled``
are appended to their overrides; their errors still end them with a traceback), so the run folder and the
log hold rank 0's output only. Give ``hydra.run.dir`` explicitly: the default
folder is named after each process's start time.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import register_configs
from .distributed import DistEnv
from .launch import train

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path="pkg://geoattn.configs", config_name="train")
def _run(cfg: DictConfig) -> None:
    train(cfg, run_dir=HydraConfig.get().runtime.output_dir)


def main() -> None:
    """Console-script entry point; Hydra reads the overrides from ``sys.argv``."""
    register_configs()
    if not DistEnv.from_environ().is_main:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    _run()


if __name__ == "__main__":
    main()
