"""Pointer-decoding throughput: instances/s of the TSP policy's decoder in torch eager, torch under a CUDA graph,
the fused Triton step and the persistent Triton kernel; and of the solve pipeline, torch vs Triton.

Decoding table. For every size ``n``, batch size ``B`` and start count ``P`` (``min(P, n)`` start cities spread
over the cities, as POMO multi-start; ``P = 1`` is greedy decoding), ``B`` seeded uniform instances
(``geoattn.tasks.uniform_points``) are encoded once by the shipped ``tsp100`` policy (untimed; under bfloat16
autocast on CUDA, as ``decode_tours`` does) and decoded greedily by

* ``torch``: ``pointer_decode(..., backend="torch")``, the reference: ``n - 1`` steps of about 20 small
  kernels each (gather, two batched matmuls, softmax, argmax, scatter);
* ``torch + CUDA graph``: the same ``n - 1`` reference steps captured once into one ``torch.cuda.CUDAGraph``
  over static buffers and replayed (capture excluded; a graph of the whole decoding rather than of one step,
  since the step's position would otherwise have to become a device tensor, and one replay beats ``n - 1``);
  CUDA only;
* ``fused step``: ``backend="triton", persistent=False``, one kernel launch per step;
* ``persistent``: ``backend="triton"``, one launch for all steps.

Times are wall-clock of the decoding (CUDA synchronised) after one untimed warm-up per method and ``n`` (Triton
compiles there), averaged over repeats until ``--min-seconds``; ``same tours`` is the share of rows whose tour
equals torch's for every method run (float32 near-ties may differ: see ``geoattn.kernels.pointer_decode``). A
cell is skipped when its estimated memory exceeds ``--max-memory-gb`` or when the previous batch size, scaled
linearly, predicts more than ``--cell-seconds``.

End-to-end table. ``decode_tours`` (greedy, or POMO multi-start from every city with the x8 augmentation) then
``two_opt`` (and, in the ``+ Or-opt`` rows, one ``or_opt`` pass after it, torch in both columns: the difference
between a pipeline's two rows is Or-opt's share of the time, which says whether a Triton Or-opt would pay) on
``--e2e-instances`` seeded TSP``--e2e-n`` instances, with ``backend="torch"`` for both, then
``backend="triton"`` for both: instances/s and mean tour length (the Triton path must keep torch's quality).

GPU host (the numbers to record; all of it takes longer than 10 minutes, so in two parts, each its own file)::

    python benchmarks/tsp/decoding.py --sizes 50,100,200 --out benchmarks/results/tsp_decoding.md
    python benchmarks/tsp/decoding.py --sizes 500,1000 --e2e-instances 0 \
        --out benchmarks/results/tsp_decoding_large.md

Smoke test (any machine, seconds; CPU, the kernel through Triton's interpreter, numbers are meaningless)::

    python benchmarks/tsp/decoding.py --smoke --out /tmp/tsp_decoding.md
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import (
    add_grid_arguments,
    cell_skip_reason,
    kernel_benchmark_device,
    markdown_table,
    positive_ints,
    timed_calls,
    write_report,
)

from geoattn.kernels import Backend
from geoattn.kernels.pointer_decode import PointerKeys, pointer_decode
from geoattn.kernels.pointer_decode.reference import (
    compute_dtype,
    initial_state,
    pointer_decode_step_reference,
)
from geoattn.nn import TSPAttentionModel
from geoattn.solvers import DecodeStrategy, decode_tours, load_pretrained, or_opt, two_opt
from geoattn.solvers.neural import spread_starts
from geoattn.tasks import uniform_points

METHODS = ("torch", "torch + CUDA graph", "fused step", "persistent")
BACKENDS: tuple[Backend, ...] = ("torch", "triton")
Decoder = Callable[[], torch.Tensor]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_arguments(p, max_memory_gb=60.0)
    p.add_argument("--starts", type=positive_ints, default=[1, 100], help="P (at most n), comma-separated")
    p.add_argument(
        "--e2e-instances", type=int, default=10_000, help="instances of the end-to-end rows (0: none)"
    )
    p.add_argument("--e2e-n", type=int, default=100, help="cities of the end-to-end instances")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/tsp_decoding.md"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (Triton's interpreter)")
    return p


def _encode(
    model: TSPAttentionModel, batch: int, n: int, rows: int, seed: int, device: torch.device
) -> tuple[PointerKeys, torch.Tensor, torch.Tensor]:
    """``(keys, fixed_queries, starts)`` of ``B`` seeded instances decoded from ``rows`` spread starts."""
    coords = uniform_points(batch, n, seed=seed).to(device)
    starts = spread_starts(n, rows, device=device).expand(batch, rows)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        enc = model.encode(coords)
        return model.pointer_keys(enc), model.fixed_query(enc, starts), starts


def _graph_decoder(keys: PointerKeys, fixed: torch.Tensor, starts: torch.Tensor, clip: float) -> Decoder:
    """The reference's ``n - 1`` steps captured in one CUDA graph over static buffers; returns its replay."""
    dtype = compute_dtype(fixed.dtype)
    keys = PointerKeys(*(t.to(dtype) for t in keys))
    fixed = fixed.to(dtype)
    n = keys.last_queries.shape[1]
    tours0, visited0 = initial_state(starts, n)
    tours, visited = tours0.clone(), visited0.clone()

    def steps() -> None:
        tours.copy_(tours0)
        visited.copy_(visited0)
        for position in range(1, n):
            pointer_decode_step_reference(keys, fixed, tours, visited, position, clip=clip)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        steps()  # warm-up before capture, as torch.cuda.graphs requires
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        steps()

    def replay() -> torch.Tensor:
        graph.replay()
        return tours

    return replay


def _decoders(
    keys: PointerKeys, fixed: torch.Tensor, starts: torch.Tensor, clip: float
) -> dict[str, Callable[[], Decoder]]:
    """Per method, a builder of its decoder (building the CUDA graph captures it)."""

    decode = functools.partial(pointer_decode, keys, fixed, starts, clip=clip)
    builders: dict[str, Callable[[], Decoder]] = {
        "torch": lambda: functools.partial(decode, backend="torch"),
        "fused step": lambda: functools.partial(decode, persistent=False, backend="triton"),
        "persistent": lambda: functools.partial(decode, backend="triton"),
    }
    if fixed.is_cuda:
        builders["torch + CUDA graph"] = lambda: _graph_decoder(keys, fixed, starts, clip)
    return builders


def _memory_gb(method: str, batch: int, n: int, rows: int, model: TSPAttentionModel) -> float:
    """Estimated peak GiB of a decoding cell: the encoder's feed-forward activations, the upcast keys and (torch)
    three ``[B, H, P, n]`` float32 score tensors of a step."""
    encoder = batch * n * (model.ff_dim + 8 * model.embed_dim) * 4
    step = 3 * batch * model.heads * rows * n * 4 if method.startswith("torch") else batch * rows * n * 9
    return (encoder + step) / 2**30


def decoding_rows(
    args: argparse.Namespace, model: TSPAttentionModel, device: torch.device
) -> list[list[str]]:
    """The decoding table: one row per (n, B, P)."""
    rows_out = []
    for n in args.sizes:
        for starts_wanted in args.starts:
            rows = min(starts_wanted, n)
            for build in _decoders(*_encode(model, 1, n, rows, args.seed, device), model.clip).values():
                build()()  # warm-up: CUDA context, Triton's compilation
            last: dict[str, tuple[int, float]] = {}  # method -> (B, seconds) of its last measured cell
            for batch in args.batches:
                cells = dict.fromkeys(METHODS, "n/a (CPU)")
                tours: dict[str, torch.Tensor] = {}
                seconds: dict[str, float] = {}
                inputs = _encode(model, batch, n, rows, args.seed, device)
                for method, build in _decoders(*inputs, model.clip).items():
                    need_gb = _memory_gb(method, batch, n, rows, model)
                    skip = cell_skip_reason(need_gb, last.get(method), batch, args)
                    if skip is not None:
                        cells[method] = skip
                        continue
                    try:
                        seconds[method], result = timed_calls(build(), device, args.min_seconds)
                        tours[method] = result.clone()  # a CUDA graph's output is its static buffer
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        cells[method] = "out of memory"
                        continue
                    last[method] = (batch, seconds[method])
                    cells[method] = f"{batch / seconds[method]:,.1f}"
                del inputs
                ratio = (
                    f"{seconds['torch'] / seconds['persistent']:.1f}x"
                    if {"torch", "persistent"} <= set(seconds)
                    else "-"
                )
                same = "-"
                if "torch" in tours and len(tours) > 1:
                    equal = torch.stack([(t == tours["torch"]).all(dim=-1) for t in tours.values()]).all(
                        dim=0
                    )
                    same = f"{100 * equal.double().mean().item():.2f}%"
                rows_out.append([str(n), str(batch), str(rows), *cells.values(), ratio, same])
                print(" | ".join(rows_out[-1]), file=sys.stderr, flush=True)
    return rows_out


def _solve(
    model: TSPAttentionModel,
    coords: torch.Tensor,
    *,
    strategy: DecodeStrategy,
    augment: bool,
    backend: Backend,
    then_or_opt: bool,
) -> torch.Tensor:
    """Lengths ``[B]`` of ``decode_tours`` then ``two_opt`` on ``coords``, both with ``backend``, then (if
    ``then_or_opt``) ``or_opt``, which has only the torch implementation."""
    decoded = decode_tours(model, coords, strategy=strategy, augment=augment, backend=backend)
    improved = two_opt(coords, decoded.tours, backend=backend)
    return or_opt(coords, improved.tours).lengths if then_or_opt else improved.lengths


def end_to_end_rows(
    args: argparse.Namespace, model: TSPAttentionModel, device: torch.device
) -> list[list[str]]:
    """The end-to-end table: ``decode_tours`` + ``two_opt`` per pipeline, torch vs Triton."""
    coords = uniform_points(args.e2e_instances, args.e2e_n, seed=args.seed + 1).to(device)
    pipelines: dict[str, tuple[DecodeStrategy, bool, bool]] = {
        "greedy + 2-opt": ("greedy", False, False),
        "greedy + 2-opt + Or-opt": ("greedy", False, True),
        "POMO x8 + 2-opt": ("multistart", True, False),
        "POMO x8 + 2-opt + Or-opt": ("multistart", True, True),
    }
    out = []
    for name, (strategy, augment, then_or_opt) in pipelines.items():
        rates, lengths = {}, {}
        for backend in BACKENDS:
            solve = functools.partial(
                _solve, model, strategy=strategy, augment=augment, backend=backend, then_or_opt=then_or_opt
            )
            solve(coords[:2])  # warm-up
            seconds, length = timed_calls(functools.partial(solve, coords), device, min_seconds=0.0)
            rates[backend] = args.e2e_instances / seconds
            lengths[backend] = length.double().mean().item()
        out.append(
            [
                name,
                f"{args.e2e_instances:,}",
                str(args.e2e_n),
                f"{rates['torch']:,.1f}",
                f"{rates['triton']:,.1f}",
                f"{rates['triton'] / rates['torch']:.1f}x",
                f"{lengths['torch']:.4f}",
                f"{lengths['triton']:.4f}",
            ]
        )
        print(" | ".join(out[-1]), file=sys.stderr, flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.sizes, args.batches, args.starts, args.min_seconds = [5, 12], [1, 3], [1, 4], 0.0
        args.e2e_instances, args.e2e_n = 3, 8
    device = kernel_benchmark_device(args.smoke)
    if device is None:
        return 1
    if args.smoke:
        torch.set_num_threads(1)  # a CPU smoke run: many tiny ops, which threads only slow down
    model = load_pretrained(device=device)
    decoding = markdown_table(
        ["n", "B", "P", *(f"{m} (inst/s)" for m in METHODS), "persistent / torch", "same tours"],
        decoding_rows(args, model, device),
    )
    body = decoding
    if args.e2e_instances > 0:
        e2e = markdown_table(
            [
                "pipeline",
                "instances",
                "n",
                "torch (inst/s)",
                "Triton (inst/s)",
                "Triton / torch",
                "mean length torch",
                "mean length Triton",
            ],
            end_to_end_rows(args, model, device),
        )
        body += f"\n\nEnd to end (`decode_tours` + `two_opt`, shipped policy, seed {args.seed + 1}):\n\n{e2e}"
    print(body)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_report(
        args.out,
        "TSP pointer decoding: torch vs CUDA graph vs fused Triton step vs persistent",
        body,
        seed=args.seed,
        config=config,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
