"""``geoattn solve-tsp``: solve TSP instances with the pretrained policy and local search.

Wired into :mod:`geoattn.cli` by :func:`add_parser`. Heavy imports (torch, the model, the readers) happen in the
handler, so ``geoattn --help`` stays fast. Every bad input ends in one line ``geoattn solve-tsp: error: ...``
on stderr and exit status 2 (a failure while solving, such as CUDA running out of memory: status 1), never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from geoattn.nn.attention_model import TSPAttentionModel
    from geoattn.solvers.solve import SolveResult
    from geoattn.tasks import TsplibInstance

__all__ = ["add_parser", "solve_tsp_command"]

PROG = "geoattn solve-tsp"
# Kept here, not imported from geoattn.solvers.solve, so that building the parser does not import torch;
# tests/cli/test_solve_tsp.py checks that they agree with the solver's DECODINGS and SOLVE_MAX_CITIES.
DECODINGS = ("greedy", "multistart", "sampling")
SOLVE_MAX_CITIES = 10_000
#: The instance solved when no input is given, shipped in ``geoattn/data``.
DEFAULT_INSTANCE = "berlin52.tsp"


class InputError(Exception):
    """A bad argument or input, reported as one line and exit status 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``solve-tsp`` sub-command to the ``geoattn`` parser's sub-commands."""
    parser = commands.add_parser(
        "solve-tsp",
        help="solve TSP instances (TSPLIB .tsp, .csv or .npy coordinates) with the neural solver",
        description=(
            "Solve travelling-salesman instances: the pretrained attention policy builds a tour, 2-opt and "
            "Or-opt improve it in the instance's exact metric (TSPLIB rules for .tsp files, Euclidean for "
            f"coordinate files). Up to {SOLVE_MAX_CITIES:,} cities. Without an input, solves the TSPLIB "
            "instance berlin52 shipped with geoattn."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="instances: TSPLIB .tsp (EUC_2D, CEIL_2D, ATT, GEO), or .csv ('x,y' rows) / .npy ([n, 2]) coordinates",
    )
    source = parser.add_argument_group("instances")
    source.add_argument(
        "--random", type=_positive_int, metavar="N", help="also solve N uniform random cities"
    )
    source.add_argument("--seed", type=int, default=0, help="seed of --random and of sampling (default: 0)")
    source.add_argument(
        "--optimal",
        type=_positive_float,
        metavar="VALUE",
        help="the known optimal length, for the gap (one instance only); by default it is read from an "
        "optimal.csv (name,optimal_length) or <name>.opt.tour next to the file",
    )
    solver = parser.add_argument_group("solver")
    solver.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="policy weights written by `python -m geoattn.solvers.pretrained export`: the folder, its "
        "manifest.json or a .safetensors in it (default: the weights shipped with geoattn)",
    )
    solver.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    solver.add_argument(
        "--decoding",
        choices=DECODINGS,
        default="multistart",
        help="how the policy builds tours: one greedy rollout, one per start city (POMO), or sampled "
        "(default: multistart)",
    )
    solver.add_argument(
        "--starts", type=_positive_int, metavar="P", help="start cities of multistart (default: by size)"
    )
    solver.add_argument(
        "--samples", type=_positive_int, default=16, metavar="S", help="tours of sampling (default: 16)"
    )
    solver.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode the 8 symmetric images of the instance (default: on)",
    )
    solver.add_argument(
        "--local-search",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="improve the decoded tour by 2-opt and Or-opt (default: on)",
    )
    solver.add_argument(
        "--time-limit",
        type=_positive_float,
        metavar="SECONDS",
        help="seconds per instance; local search stops there with its best tour (default: none)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--tour-out",
        type=Path,
        metavar="PATH",
        help="write the tour as a TSPLIB .tour (a folder: one per instance)",
    )
    output.add_argument("--json", metavar="PATH", help="write a JSON summary ('-': to stdout)")
    output.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="draw the tour (a folder: one per instance); needs matplotlib",
    )
    parser.set_defaults(handler=solve_tsp_command)
    return parser


def solve_tsp_command(args: argparse.Namespace) -> int:
    """The handler of ``geoattn solve-tsp``; returns the exit status.

    0 on success; 2 after a bad input, option, file or weights (one line on stderr); 1 after a failure while
    solving (e.g. CUDA out of memory), also as one line.
    """
    try:
        return _run(args)
    except (InputError, ValueError, FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"{PROG}: error while solving: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    count = len(args.inputs) + (args.random is not None)
    if args.optimal is not None and count > 1:
        raise InputError("--optimal applies to one instance; several were given")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise InputError("--plot needs matplotlib: pip install 'geoattn[plot]'")
    json_to_stdout = args.json == "-"
    for option, target in (("--tour-out", args.tour_out), ("--json", args.json), ("--plot", args.plot)):
        if target is not None and target != "-":
            _check_writable(option, Path(target))
    with ExitStack() as stack:
        instances = _read_instances(args, stack)
        device = _device(args.device)
        model = _load_model(args.model, device)

        from tqdm import tqdm

        from geoattn.solvers.solve import solve_tsp

        results: list[SolveResult] = []
        bar = tqdm(instances, desc="solve-tsp", unit="instance", disable=len(instances) < 2, file=sys.stderr)
        for instance in bar:
            result = solve_tsp(
                instance,
                model,
                decoding=args.decoding,
                augment=args.augment,
                local_search=args.local_search,
                time_limit=args.time_limit,
                num_starts=args.starts,
                num_samples=args.samples,
                seed=args.seed,
                device=device,
                optimum=args.optimal,
            )
            results.append(result)
            if not json_to_stdout:
                bar.write(_describe(result))
        if len(results) > 1 and not json_to_stdout:
            print(_overall(results))
        _write_outputs(args, instances, results)
    return 0


def _read_instances(args: argparse.Namespace, stack: ExitStack) -> list[TsplibInstance]:
    """The instances to solve, in order: the files, then ``--random``; berlin52 when none is given."""
    from geoattn.solvers.solve import load_instance
    from geoattn.tasks import MIN_CITIES, TsplibInstance, uniform_points

    paths: list[Path] = list(args.inputs)
    if not paths and args.random is None:
        paths = [stack.enter_context(_packaged(DEFAULT_INSTANCE))]
    instances = []
    for path in paths:
        instance = load_instance(path, optimal=args.optimal)
        if instance.n > SOLVE_MAX_CITIES:
            raise InputError(f"{path}: {instance.n} cities; solve-tsp solves up to {SOLVE_MAX_CITIES}")
        instances.append(instance)
    if args.random is not None:
        n = args.random
        if not MIN_CITIES <= n <= SOLVE_MAX_CITIES:
            raise InputError(f"--random {n}: accepted sizes are {MIN_CITIES} to {SOLVE_MAX_CITIES} cities")
        points = uniform_points(1, n, seed=args.seed).double()[0].numpy()
        instances.append(
            TsplibInstance(
                name=f"random{n}-seed{args.seed}", coords=points, edge_weight_type=None, optimum=args.optimal
            )
        )
    return instances


@contextmanager
def _packaged(name: str) -> Iterator[Path]:
    """A file shipped in ``geoattn.data`` as a real path (extracted while in use if installed zipped)."""
    from importlib.resources import as_file, files

    with as_file(files("geoattn.data") / name) as path:
        yield path


def _device(text: str) -> torch.device:
    import torch

    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise InputError(f"--device {text!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {text!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {text!r}: CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {text!r}: only {torch.cuda.device_count()} CUDA devices here")
    return device


def _load_model(path: Path | None, device: torch.device) -> TSPAttentionModel:
    from geoattn.solvers.pretrained import PretrainedWeightsError
    from geoattn.solvers.solve import load_policy

    try:
        return load_policy(path, device=device)
    except PretrainedWeightsError as exc:
        raise InputError(str(exc)) from None
    except FileNotFoundError as exc:
        if path is None:
            raise InputError(f"{exc}; or pass --model PATH to exported weights") from None
        raise


def _describe(result: SolveResult) -> str:
    """One line: length, optimum, gap and time of a solved instance."""
    kind = result.edge_weight_type or "Euclidean"
    if result.duplicates:  # still a valid instance: every city is visited once
        kind = f"{result.duplicates} at the same place as another, {kind}"
    optimum = "unknown" if result.optimum is None else f"{result.optimum:g}"
    gap = "" if result.gap is None else f", gap {result.gap:.2f}%"
    decoding = result.decoding
    if result.starts is not None:
        decoding += f" {result.starts} start{'s' if result.starts != 1 else ''}"
    if result.augment:
        decoding += " x8"
    if result.coarse_cities is not None:
        decoding += f" on {result.coarse_cities} cities"
    search = {
        "off": "no local search",
        "dense": "2-opt + Or-opt",
        "neighbour-lists": "2-opt + Or-opt (lists)",
    }
    limit = ", stopped at the time limit" if result.timed_out else ""
    times = result.times
    return (
        f"{result.name} ({result.n} cities, {kind}): length {result.length:g}, optimum {optimum}{gap}, "
        f"time {times['total']:.2f} s (decode {times['decode']:.2f} s, {decoding}; local search "
        f"{times['local_search']:.2f} s, {search[result.local_search]}{limit})"
    )


def _overall(results: Sequence[SolveResult]) -> str:
    gaps = [r.gap for r in results if r.gap is not None]
    total = sum(r.times["total"] for r in results)
    mean = (
        f"mean gap {sum(gaps) / len(gaps):.2f}% over {len(gaps)} with a known optimum"
        if gaps
        else "no optimum known"
    )
    return f"{len(results)} instances: {mean}; total time {total:.2f} s"


def _targets(path: Path, names: Sequence[str], suffix: str) -> list[Path]:
    """Output files: ``path`` itself for one instance (unless it is a folder), else ``path/<name><suffix>``."""
    if len(names) == 1 and not path.is_dir():
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    targets = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        stem = name if seen[name] == 1 else f"{name}-{seen[name]}"
        targets.append(path / f"{stem}{suffix}")
    return targets


def _write_outputs(
    args: argparse.Namespace, instances: Sequence[TsplibInstance], results: Sequence[SolveResult]
) -> None:
    names = [r.name for r in results]
    if args.tour_out is not None:
        for result, target in zip(results, _targets(args.tour_out, names, ".tour"), strict=True):
            _atomic_write(target, _tsplib_tour(result))
    if args.plot is not None:
        for instance, result, target in zip(
            instances, results, _targets(args.plot, names, ".png"), strict=True
        ):
            _plot(instance, result, target)
    if args.json is not None:
        text = json.dumps(_json_summary(args, results), indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            _atomic_write(Path(args.json), text)


def _tsplib_tour(result: SolveResult) -> str:
    """The tour in TSPLIB's ``.tour`` format (1-based nodes, ``-1`` and ``EOF`` at the end)."""
    header = [
        f"NAME : {result.name}.tour",
        f"COMMENT : Length {result.length:g}, found by geoattn solve-tsp",
        "TYPE : TOUR",
        f"DIMENSION : {result.n}",
        "TOUR_SECTION",
    ]
    return "\n".join([*header, *(str(int(c) + 1) for c in result.tour), "-1", "EOF"]) + "\n"


def _json_summary(args: argparse.Namespace, results: Sequence[SolveResult]) -> dict[str, object]:
    from geoattn import __version__

    settings = {
        "model": None if args.model is None else str(args.model),
        "device": args.device,
        "decoding": args.decoding,
        "starts": args.starts,
        "samples": args.samples,
        "augment": args.augment,
        "local_search": args.local_search,
        "time_limit_s": args.time_limit,
        "seed": args.seed,
    }
    return {"geoattn": __version__, "settings": settings, "instances": [r.summary() for r in results]}


def _check_writable(option: str, path: Path) -> None:
    """Fail before solving when ``path`` cannot be created: its nearest existing ancestor must be a folder."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: cannot write there, {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK):
        raise InputError(f"{option} {path}: cannot write there, {ancestor} is not writable")


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def _plot(instance: TsplibInstance, result: SolveResult, path: Path) -> None:
    """Draw the cities and the closed tour (unit-square picture of the instance) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from geoattn.solvers.solve import normalise_coordinates

    xy = normalise_coordinates(instance.coords, instance.edge_weight_type)
    closed = np.append(result.tour, result.tour[0])
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot(xy[closed, 0], xy[closed, 1], "-", color="tab:blue", linewidth=1)
    ax.plot(xy[:, 0], xy[:, 1], "o", color="black", markersize=max(1.0, 4.0 - result.n / 500))
    gap = "" if result.gap is None else f", gap {result.gap:.2f}%"
    ax.set_title(f"{result.name}: {result.n} cities, length {result.length:g}{gap}")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
