"""Pairwise κ-stereographic distances: the Triton kernel vs the torch reference vs geoopt's broadcast ``dist``.

For each size and dtype, forward and forward+backward (gradients for x, y and a learnable scalar k), median
times from ``triton.testing.do_bench``, the speed-up of the kernel over each peer, and the error of each
implementation against the float64 reference on the same (rounded) inputs: ``max|out - ref| / max|ref|``
for the forward, the same for ``dL/dx`` with ``L = sum(w * out)`` for forward+backward.

geoopt's ``dist(x[..., :, None, :], y[..., None, :, :])`` materialises ``[..., N, M, D]`` tensors; its
memory is measured at a small size and scaled, and sizes that would not fit are reported as skipped.

GPU (the numbers to record)::

    python benchmarks/pairwise_dist.py --out benchmarks/results/pairwise_dist.md

Smoke test (any machine; on CPU the kernel runs through Triton's interpreter, times are meaningless)::

    python benchmarks/pairwise_dist.py --smoke
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from _common import environment, kernel_benchmark_device, markdown_table, median_ms, write_report
from geoopt.manifolds.stereographic import math as geoopt_math

DEFAULT_SIZES = "4096x40943x32,2048x2048x64,32x1024x1024x64,8192x8192x128"
SMOKE_SIZES = "19x23x7,2x17x9x5"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
IMPLS = ("triton", "torch", "geoopt")

Impl = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Size:
    batch: int
    n: int
    m: int
    d: int

    @classmethod
    def parse(cls, text: str) -> Size:
        parts = [int(p) for p in text.lower().split("x")]
        if len(parts) == 3:
            parts = [1, *parts]
        if len(parts) != 4 or min(parts) < 1:
            raise argparse.ArgumentTypeError(
                f"size {text!r}: expected NxMxD or BxNxMxD with positive integers"
            )
        return cls(*parts)

    def __str__(self) -> str:
        lead = f"{self.batch}x" if self.batch > 1 else ""
        return f"{lead}{self.n}x{self.m}x{self.d}"


def _impls() -> dict[str, Impl]:
    from geoattn.kernels.pairwise_dist import pairwise_dist, pairwise_dist_reference

    def geoopt_dist(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return geoopt_math.dist(x.unsqueeze(-2), y.unsqueeze(-3), k=k)

    return {
        "triton": lambda x, y, k: pairwise_dist(x, y, k=k, backend="triton"),
        "torch": lambda x, y, k: pairwise_dist_reference(x, y, k=k),
        "geoopt": geoopt_dist,
    }


def _inputs(
    size: Size, dtype: torch.dtype, k: float, device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points inside the ball (norms up to 0.7 of its radius), a scalar k and the backward's weights."""
    gen = torch.Generator(device=device).manual_seed(seed)
    radius = 0.7 / math.sqrt(max(abs(k), 1.0))

    def points(*shape: int) -> torch.Tensor:
        p = torch.randn(*shape, generator=gen, device=device)
        scale = torch.rand(*shape[:-1], 1, generator=gen, device=device) * radius
        return (p / p.norm(dim=-1, keepdim=True) * scale).to(dtype)

    lead = (size.batch,) if size.batch > 1 else ()
    x, y = points(*lead, size.n, size.d), points(*lead, size.m, size.d)
    w = torch.randn(*lead, size.n, size.m, generator=gen, device=device).to(dtype)
    return x, y, torch.tensor(k, dtype=dtype, device=device), w


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-300)).item()


def _geoopt_bytes(
    size: Size, dtype: torch.dtype, k: float, device: torch.device, backward: bool
) -> float | None:
    """geoopt's peak memory at ``size``, extrapolated from a 64 x 64 run (memory grows with B*N*M*D)."""
    if device.type != "cuda":
        return None
    small = Size(1, 64, 64, size.d)
    x, y, kt, w = _inputs(small, dtype, k, device, seed=0)
    x.requires_grad_(backward)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = _impls()["geoopt"](x, y, kt)
    if backward:
        (out * w).sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    return peak * (size.batch * size.n * size.m) / (small.n * small.m)


def _fmt_ms(ms: float | str) -> str:
    return ms if isinstance(ms, str) else f"{ms:.3f}"


def bench_one(
    size: Size, dtype: torch.dtype, args: argparse.Namespace, device: torch.device
) -> list[list[str]]:
    """Two table rows (forward, forward+backward) for one size and dtype."""
    impls = _impls()
    x, y, k, w = _inputs(size, dtype, args.k, device, args.seed)
    x64, y64, k64, w64 = (t.detach().double().requires_grad_() for t in (x, y, k, w))
    ref = impls["torch"](x64, y64, k64)
    (ref_dx,) = torch.autograd.grad((ref * w64).sum(), x64)
    ref = ref.detach()
    del x64, y64, k64, w64

    rows = []
    for backward in (False, True):
        times: dict[str, float | str] = {}
        errors: dict[str, str] = {}
        for name in args.impls:
            if name == "geoopt":
                need = _geoopt_bytes(size, dtype, args.k, device, backward)
                free = torch.cuda.mem_get_info()[0] if device.type == "cuda" else None
                if need is not None and free is not None and need > 0.9 * free:
                    times[name] = f"OOM/skipped (would need {need / 2**30:.0f} GB)"
                    errors[name] = "-"
                    continue
            try:
                xi, yi, ki = (t.detach().clone().requires_grad_(backward) for t in (x, y, k))
                fn = impls[name]
                if backward:

                    def run(
                        fn: Impl = fn, xi: torch.Tensor = xi, yi: torch.Tensor = yi, ki: torch.Tensor = ki
                    ) -> None:
                        fn(xi, yi, ki).backward(w)

                    times[name] = median_ms(run, grad_to_none=[xi, yi, ki], warmup=args.warmup, rep=args.rep)
                    xi.grad = None
                    run()
                    assert xi.grad is not None
                    errors[name] = f"{_rel_err(xi.grad, ref_dx):.1e}"
                else:
                    with torch.no_grad():
                        times[name] = median_ms(lambda fn=fn: fn(x, y, k), warmup=args.warmup, rep=args.rep)
                        errors[name] = f"{_rel_err(fn(x, y, k), ref):.1e}"
            except torch.cuda.OutOfMemoryError:
                need = _geoopt_bytes(size, dtype, args.k, device, backward) if name == "geoopt" else None
                times[name] = "OOM" + (f" (estimated {need / 2**30:.0f} GB)" if need else "")
                errors[name] = "-"
            except Exception as exc:  # one failing implementation must not end the run
                times[name], errors[name] = f"error: {type(exc).__name__}: {str(exc)[:80]}", "-"
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        base = times.get("triton")
        ratios = [
            f"{t / base:.2f}x" if isinstance(t, float) and isinstance(base, float) else "-"
            for t in (times.get(n, "-") for n in args.impls if n != "triton")
        ]
        rows.append(
            [str(size), str(dtype).removeprefix("torch."), "fwd+bwd" if backward else "fwd"]
            + [_fmt_ms(times.get(n, "-")) for n in args.impls]
            + (ratios if "triton" in args.impls else [])
            + [errors.get(n, "-") for n in args.impls]
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", default=None, help=f"comma-separated NxMxD or BxNxMxD (default {DEFAULT_SIZES})"
    )
    parser.add_argument("--dtypes", default="float32,bfloat16", help=f"comma-separated, of {sorted(DTYPES)}")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, of {IMPLS}")
    parser.add_argument("--k", type=float, default=-1.0, help="curvature (default -1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--warmup", type=int, default=25, help="do_bench warm-up in ms (default 25)")
    parser.add_argument("--rep", type=int, default=100, help="do_bench measuring time in ms (default 100)")
    parser.add_argument("--out", default=None, help="write the report (markdown) to this file")
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes ({SMOKE_SIZES}), CPU-OK")
    args = parser.parse_args(argv)
    sizes = args.sizes or (SMOKE_SIZES if args.smoke else DEFAULT_SIZES)
    args.sizes = [Size.parse(s) for s in sizes.split(",") if s]
    unknown = [d for d in args.dtypes.split(",") if d not in DTYPES]
    if unknown:
        parser.error(f"--dtypes: unknown {unknown}; accepted: {sorted(DTYPES)}")
    args.dtypes = [DTYPES[d] for d in args.dtypes.split(",")]
    args.impls = [i for i in args.impls.split(",") if i]
    if not set(args.impls) <= set(IMPLS):
        parser.error(f"--impls: accepted {IMPLS}, got {args.impls}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = kernel_benchmark_device(args.smoke)  # before the kernel module (and its triton.jit) loads
    if device is None:
        return 2
    torch.manual_seed(args.seed)

    headers = ["size (BxNxMxD)", "dtype", "pass"]
    headers += [f"{n} ms" for n in args.impls]
    if "triton" in args.impls:
        headers += [f"{n}/triton" for n in args.impls if n != "triton"]
    headers += [f"err {n}" for n in args.impls]
    rows: list[list[str]] = []
    for size in args.sizes:
        for dtype in args.dtypes:
            try:
                rows += bench_one(size, dtype, args, device)
            except torch.cuda.OutOfMemoryError:
                rows.append([str(size), str(dtype).removeprefix("torch."), "OOM (inputs/float64 reference)"])
                torch.cuda.empty_cache()
            print(f"done {size} {dtype}", file=sys.stderr, flush=True)
    width = len(headers)
    table = markdown_table(headers, [r + ["-"] * (width - len(r)) for r in rows])
    note = (
        f"k = {args.k}; median ms (triton.testing.do_bench); `X/triton` = time of X over the kernel's; "
        "err = max|out - ref| / max|ref| (fwd) or the same for dL/dx (fwd+bwd) against float64."
    )
    for name, value in environment().items():
        print(f"{name}: {value}")
    print(note)
    print(table)
    if args.out:
        config = {
            "sizes": [str(s) for s in args.sizes],
            "dtypes": [str(d) for d in args.dtypes],
            "impls": args.impls,
            "k": args.k,
            "warmup_ms": args.warmup,
            "rep_ms": args.rep,
        }
        write_report(args.out, "pairwise_dist", f"{note}\n\n{table}", seed=args.seed, config=config)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
