"""Solve TSP instances from Python with the neural solver behind ``geoattn solve-tsp``.

Reads a TSPLIB instance (berlin52, shipped with geoattn) and random cities, solves both with the pretrained
attention policy plus local search, and compares the decoding strategies on the TSPLIB instance::

    python examples/solve_tsp.py                      # the shipped weights
    python examples/solve_tsp.py --model runs/weights/tsp100.safetensors --device cuda
    python examples/solve_tsp.py --smoke              # a tiny untrained policy: checks the code path only

The command line does the same: ``geoattn solve-tsp`` (berlin52), ``geoattn solve-tsp a.tsp b.csv``.
"""

from __future__ import annotations

import argparse
from importlib.resources import as_file, files

import numpy as np
import torch

from geoattn.nn.attention_model import TSPAttentionModel
from geoattn.solvers.solve import Decoding, SolveResult, load_instance, load_policy, solve_tsp
from geoattn.tasks import TsplibInstance, uniform_points


def policy(path: str | None, device: str, smoke: bool) -> TSPAttentionModel:
    """The shipped policy, a weights file, or (``--smoke``) a tiny untrained one."""
    if smoke:
        torch.manual_seed(0)
        return TSPAttentionModel(embed_dim=16, heads=2, layers=1, ff_dim=32)
    return load_policy(path, device=device)


def report(result: SolveResult) -> str:
    gap = "optimum unknown" if result.gap is None else f"gap {result.gap:5.2f}% to {result.optimum:g}"
    return (
        f"{result.name:>16} n={result.n:<5} {result.decoding:>10}{' x8' if result.augment else '   '}  "
        f"decoded {result.decoded_length:>10.6g} -> {result.length:>10.6g}  {gap}  {result.times['total']:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--model", help="exported weights: folder, manifest.json or .safetensors (default: shipped)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny untrained policy, small instances")
    args = parser.parse_args()
    model = policy(args.model, args.device, args.smoke)

    # A TSPLIB file: distances by the file's EDGE_WEIGHT_TYPE, optimum from the optimal.csv beside it.
    with as_file(files("geoattn.data") / "berlin52.tsp") as path:
        berlin = load_instance(path)
    settings: list[tuple[Decoding, bool]] = [("greedy", False), ("multistart", False), ("multistart", True)]
    for decoding, augment in settings:
        result = solve_tsp(berlin, model, decoding=decoding, augment=augment, device=args.device)
        print(report(result))

    # Coordinates from anywhere: an [n, 2] array; Euclidean float distances, no optimum.
    n = 60 if args.smoke else 500
    points = uniform_points(1, n, seed=0, dtype=torch.float64)[0].numpy() * 1000.0
    cities = TsplibInstance(name=f"uniform{n}", coords=points, edge_weight_type=None)
    result = solve_tsp(cities, model, time_limit=30.0, device=args.device)
    print(report(result))
    tour = result.tour
    assert np.array_equal(np.sort(tour), np.arange(n))  # a permutation: every city once
    print(f"first cities of the tour: {tour[:8].tolist()} ...")


if __name__ == "__main__":
    main()
