"""Hierarchical self-attention (the DP) vs dense softmax attention vs PyTorch SDPA: time and memory vs N.

For each number of tokens ``N`` and tree depth ``L`` the hierarchy is a regular tree with ``L`` levels of
(nearly) equal branching ``b ~ N^(1/L)`` (``Hierarchy.regular``), so the DP computes ``~ N b`` logits per
head instead of ``N^2``: its cost should grow like ``N^(1 + 1/L)``, dense attention's like ``N^2``. Each
configuration is timed forward and forward+backward (gradients for q, k and v) with
``triton.testing.do_bench`` (median), with peak CUDA memory above the inputs; dense and SDPA do not depend
on the tree and are measured once per ``N``. On CUDA the DP is also timed captured as CUDA graphs
(``torch.cuda.make_graphed_callables``, "graphed"), which removes its per-kernel launch costs. The last table fits ``log time = a + slope * log N`` per
method, mode and depth. Before timing, the DP on a flat tree is checked against SDPA (they are the same
attention).

GPU (the numbers to record; N = 1k, 4k, 16k, 64k, 256k took 40 s on one H200, all nine sizes take longer)::

    python benchmarks/hsa.py --out benchmarks/results/hsa.md

Smoke test (any machine; tiny sizes on CPU, times are meaningless)::

    python benchmarks/hsa.py --smoke --out /tmp/hsa.md
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from _common import environment, markdown_table, median_ms, write_report

from geoattn.hierarchy import Hierarchy
from geoattn.nn.hierarchical_attention import hierarchical_attention

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
IMPLS = ("hsa", "hsa_graph", "sdpa", "dense")
MODES = ("fwd", "fwd+bwd")
DEFAULT_SIZES = ",".join(str(2**p) for p in range(10, 19))  # 1024 .. 262144
SMOKE_SIZES = "64,256,1024"


def branching(n: int, depth: int) -> list[int]:
    """``depth`` factors of ``n`` (a power of two) as equal as possible, largest first."""
    bits = int(math.log2(n))
    if 2**bits != n:
        raise SystemExit(f"--sizes: {n} is not a power of two")
    if depth > bits:
        raise SystemExit(f"depth {depth} needs N >= 2**{depth}, got N = {n}")
    return [2 ** (bits // depth + (1 if i < bits % depth else 0)) for i in range(depth)]


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention with the ``[B, H, N, N]`` matrix materialised."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v


def graphed_hsa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tree: Hierarchy
) -> Callable[[], torch.Tensor]:
    """The DP on ``tree`` captured once as CUDA graphs (forward and backward) by PyTorch's
    ``torch.cuda.make_graphed_callables``: one graph launch replaces the DP's few kernels per level and
    block, which dominate at small N. Valid while ``tree`` and the input shapes stay fixed."""

    def dp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return hierarchical_attention(q, k, v, tree)

    graphed = torch.cuda.make_graphed_callables(dp, (q, k, v))
    return partial(graphed, q, k, v)


def measure(
    fn: Callable[[], torch.Tensor] | Callable[[], Callable[[], torch.Tensor]],
    inputs: list[torch.Tensor],
    mode: str,
    args: argparse.Namespace,
    *,
    build: bool = False,
) -> tuple[float | None, float | None]:
    """(median ms, peak MiB above the inputs) of ``fn`` (forward or forward+backward); ``None`` if OOM.

    With ``build=True``, ``fn`` makes the callable to time (e.g. captures CUDA graphs) inside the memory
    window, so the graphs' memory pool counts in the peak.
    """
    grad = None

    def step() -> object:
        out = fn()
        if mode == "fwd":
            return out
        nonlocal grad
        if grad is None:
            grad = torch.randn_like(out)
        out.backward(grad)
        return None

    cuda = torch.cuda.is_available()
    try:
        if cuda:
            gc.collect()  # free earlier rows' graph pools now, not inside this row's window (negative MiB)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        if build:
            fn = fn()  # type: ignore[assignment]
        step()
        for t in inputs:
            t.grad = None
        memory = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else None
        ms = median_ms(step, grad_to_none=inputs if mode != "fwd" else None, warmup=args.warmup, rep=args.rep)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None, None
    finally:
        for t in inputs:
            t.grad = None
    return ms, memory


def fmt(value: float | None, digits: int = 2) -> str:
    return "OOM" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default=None, help=f"comma-separated N, powers of two (default: {DEFAULT_SIZES})"
    )
    parser.add_argument("--depths", default="2,4,8", help="comma-separated tree depths (default: 2,4,8)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--impls", default=",".join(IMPLS), help="subset of hsa,sdpa,dense")
    parser.add_argument("--modes", default=",".join(MODES), help="subset of fwd,fwd+bwd")
    parser.add_argument(
        "--max-dense-n", type=int, default=32768, help="largest N for the materialised N x N matrix"
    )
    parser.add_argument(
        "--max-sdpa-n", type=int, default=131072, help="largest N for SDPA (time grows as N^2)"
    )
    parser.add_argument("--warmup", type=int, default=25, help="do_bench warm-up in ms")
    parser.add_argument("--rep", type=int, default=100, help="do_bench repetition time in ms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes ({SMOKE_SIZES}) on any device")
    parser.add_argument("--out", default=None, help="write the markdown report (tables + environment) here")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in (args.sizes or (SMOKE_SIZES if args.smoke else DEFAULT_SIZES)).split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    impls = [i for i in args.impls.split(",") if i]
    modes = [m for m in args.modes.split(",") if m]
    if unknown := (set(impls) - set(IMPLS)) | (set(modes) - set(MODES)):
        parser.error(f"unknown impls/modes {sorted(unknown)}; accepted: {IMPLS} and {MODES}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    graphs = "hsa_graph" in impls and device.type == "cuda"  # CUDA graphs exist only on CUDA
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)
    env = environment()
    print(f"device: {env['device']}; torch {env['torch']}; git {env['git']}; seed {args.seed}")

    # Sanity: on a flat tree the DP is softmax attention.
    n_check = min(sizes[0], 1024)
    q, k, v = (torch.randn(1, 2, n_check, 16, device=device, dtype=torch.float32) for _ in range(3))
    flat = Hierarchy.from_nested(list(range(n_check)))
    check = float(
        (hierarchical_attention(q, k, v, flat) - torch.nn.functional.scaled_dot_product_attention(q, k, v))
        .abs()
        .max()
    )
    print(f"check: flat-tree HSA vs SDPA at N={n_check}, float32: max |diff| = {check:.2e}")

    rows: list[list[str]] = []
    times: dict[tuple[str, str, int | None], dict[int, float]] = {}
    for n in sizes:
        shape = (args.batch, args.heads, n, args.head_dim)
        q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
        inputs = [q, k, v]
        peers: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        for impl in ("sdpa", "dense"):
            limit = args.max_sdpa_n if impl == "sdpa" else args.max_dense_n
            if impl not in impls or n > limit:
                continue
            fn: Callable[[], torch.Tensor] = (
                partial(torch.nn.functional.scaled_dot_product_attention, q, k, v)
                if impl == "sdpa"
                else partial(dense_attention, q, k, v)
            )
            for mode in modes:
                peers[impl, mode] = measure(fn, inputs, mode, args)
                if peers[impl, mode][0] is not None:
                    times.setdefault((impl, mode, None), {})[n] = peers[impl, mode][0]  # type: ignore[assignment]
        for depth in depths:
            if depth > int(math.log2(n)):
                continue
            tree_shape = branching(n, depth)
            start = time.perf_counter()
            tree = Hierarchy.regular(tree_shape)
            tree.plan(device)
            build_ms = (time.perf_counter() - start) * 1e3
            for mode in modes:
                hsa_ms, hsa_mib = (
                    measure(partial(hierarchical_attention, q, k, v, tree), inputs, mode, args)
                    if "hsa" in impls
                    else (None, None)
                )
                if hsa_ms is not None:
                    times.setdefault(("hsa", mode, depth), {})[n] = hsa_ms
                graph_ms, graph_mib = (
                    measure(partial(graphed_hsa, q, k, v, tree), inputs, mode, args, build=True)
                    if "hsa_graph" in impls and device.type == "cuda"
                    else (None, None)
                )
                if graph_ms is not None:
                    times.setdefault(("hsa_graph", mode, depth), {})[n] = graph_ms
                sdpa_ms, sdpa_mib = peers.get(("sdpa", mode), (None, None))
                dense_ms, dense_mib = peers.get(("dense", mode), (None, None))

                def ratio(peer: float | None, hsa: float | None = hsa_ms) -> str:
                    return "—" if peer is None or hsa is None else f"{peer / hsa:.2f}x"

                rows.append(
                    [
                        str(n),
                        str(depth),
                        "x".join(map(str, tree_shape)),
                        mode,
                        fmt(hsa_ms),
                        fmt(hsa_mib, 1) if device.type == "cuda" else "—",
                        fmt(graph_ms) if graphs else "—",
                        fmt(graph_mib, 1) if graphs else "—",
                        fmt(sdpa_ms) if ("sdpa", mode) in peers else "skip",
                        fmt(sdpa_mib, 1) if device.type == "cuda" and ("sdpa", mode) in peers else "—",
                        fmt(dense_ms) if ("dense", mode) in peers else "skip",
                        fmt(dense_mib, 1) if device.type == "cuda" and ("dense", mode) in peers else "—",
                        ratio(sdpa_ms),
                        ratio(sdpa_ms, graph_ms) if graphs else "—",
                        ratio(dense_ms),
                        f"{build_ms:.0f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)

    headers = [
        "N",
        "depth",
        "branching",
        "mode",
        "HSA ms",
        "HSA MiB",
        "graphed ms",
        "graphed MiB",
        "SDPA ms",
        "SDPA MiB",
        "dense ms",
        "dense MiB",
        "SDPA/HSA",
        "SDPA/graphed",
        "dense/HSA",
        "tree+plan ms (CPU)",
    ]
    table = markdown_table(headers, rows)
    slope_rows = []
    for (impl, mode, depth), by_n in sorted(
        times.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or 0)
    ):
        if len(by_n) < 2:
            continue
        ns = np.array(sorted(by_n), dtype=float)
        ts = np.array([by_n[int(n)] for n in ns])
        slope = float(np.polyfit(np.log(ns), np.log(ts), 1)[0])
        # launch overheads flatten the curve at small N: fit the three largest sizes on their own too
        top = float(np.polyfit(np.log(ns[-3:]), np.log(ts[-3:]), 1)[0]) if len(ns) > 3 else slope
        expected = "2" if not impl.startswith("hsa") else f"{1 + 1 / depth:.2f}" if depth else "—"
        slope_rows.append(
            [
                impl,
                mode,
                "—" if depth is None else str(depth),
                f"{int(ns[0])}..{int(ns[-1])}",
                f"{slope:.2f}",
                f"{top:.2f}",
                expected,
            ]
        )
    slopes = markdown_table(
        ["method", "mode", "depth", "N range", "slope (all N)", "slope (3 largest N)", "ideal"], slope_rows
    )
    print()
    print(table)
    print()
    print(slopes)
    note = (
        f"Inputs `[B={args.batch}, H={args.heads}, N, d={args.head_dim}]` {args.dtype}; HSA over a regular tree "
        f"(`Hierarchy.regular(branching)`); times are medians of `triton.testing.do_bench` on CUDA (3 wall-clock "
        f"runs on CPU); memory is the peak CUDA allocation above the inputs. Flat-tree check (HSA vs SDPA, "
        f"N={n_check}, float32): max |diff| = {check:.2e}. Fitted slopes below the ideal reflect launch "
        f"overheads at small N (the DP issues a few kernels per level and block); the ideal for HSA counts "
        f"logits, ~N^(1 + 1/depth), while its memory traffic on the node states grows like N. Graphed is the "
        f"same DP captured once as CUDA graphs (`torch.cuda.make_graphed_callables`, memory pool included), "
        f"which removes those launch costs."
    )
    if args.out:
        config = {
            "sizes": sizes,
            "depths": depths,
            "batch": args.batch,
            "heads": args.heads,
            "head_dim": args.head_dim,
            "dtype": args.dtype,
            "impls": impls,
            "modes": modes,
            "max_dense_n": args.max_dense_n,
            "max_sdpa_n": args.max_sdpa_n,
            "warmup_ms": args.warmup,
            "rep_ms": args.rep,
        }
        body = "\n\n".join([note, table, "Fitted log-log slopes (time ~ N^slope):", slopes])
        write_report(
            args.out,
            "Hierarchical self-attention vs dense softmax and SDPA",
            body,
            seed=args.seed,
            config=config,
        )
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
