"""Fused manifold attention: the Triton kernel vs the eager torch reference, torch.compile of it, and SDPA.

Hyperbolic distance attention with gyro-midpoint aggregation (``score="distance"``,
``aggregation="midpoint"``, one curvature per head) at B = 4, H = 16, D = 64 in bfloat16 over N = 512 ..
16384 (self-attention, M = N), forward and forward+backward (gradients for q, k, v, curvature and beta).
Peers: the eager torch reference (``manifold_attention_reference``: materialises ``[B, H, N, N]`` scores,
so it runs out of memory at large N, reported as OOM), ``torch.compile`` of the same reference (default
mode, one dynamic-shape compilation per pass; its cells say why when it is skipped: ``--smoke``, N above
``--compile-max-n``, or torch.compile not working on this machine, probed once before the run), and
PyTorch's ``scaled_dot_product_attention`` restricted to its flash backend: Euclidean dot-product attention,
the speed-of-light proxy. For each: median time
(``triton.testing.do_bench``), peak memory above the inputs, and for the kernel its error against the
float64 reference on a slice (first batch element, two heads) at N <= 4096.

Floors (H200; printed with the assumptions): matrix work ``FLOPs / peak bf16 tensor rate``, transcendental
work ``MUFU ops / MUFU rate`` and memory ``bytes / HBM bandwidth``; the floor of an implementation is the
largest of the three, and each measured time is reported as a multiple of its floor.

GPU (the numbers to record; writes a partial report after every row, so a timeout keeps what was done)::

    python benchmarks/manifold_attention.py --out benchmarks/results/manifold_attention.md

Smoke test (any machine; on CPU the kernel runs through Triton's interpreter, times are meaningless)::

    python benchmarks/manifold_attention.py --smoke
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from _common import environment, kernel_benchmark_device, markdown_table, median_ms, write_report
from torch.nn import functional as F

IMPLS = ("triton", "eager", "compile", "sdpa")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_SIZES = "512,1024,2048,4096,8192,16384"

# Assumed H200 SXM rates (dense, no sparsity): the floors below are computed from these.
PEAK_TENSOR_FLOPS = 989e12  # bf16/fp16 tensor-core FLOP/s
HBM_BYTES_PER_S = 4.8e12
SMS, CLOCK_HZ, MUFU_PER_CLOCK_PER_SM = 132, 1.98e9, 16  # MUFU: rcp/rsqrt/sqrt/lg2/ex2, 16 per clock per SM
MUFU_OPS_PER_S = SMS * CLOCK_HZ * MUFU_PER_CLOCK_PER_SM
# MUFU operations per score (forward, backward), as the kernels are written (kernels/manifold_attention/
# kernel.py), for k < 0: the arcosh form z = 2|k| r_i r_j |q - k|^2 with per-row/column conformal factors
# (no division), theta = log(1 + z + sqrt(z (z + 2))), then exp2: sqrt, lg2, ex2 -> 3 forward; the backward
# recomputes in two kernels (key blocks: dK, dV; query blocks: dQ), each with rsqrt (1/sinh theta, and
# sinh theta = z(z+2) rsqrt), lg2, ex2 -> 6. (k > 0: sqrt and ex2; k = 0: ex2 alone.)
MUFU_PER_SCORE = {"triton": (3, 6), "sdpa": (1, 1)}
# The least any exact distance-softmax kernel needs: exp + log + sqrt per score, recomputed once in a
# backward that takes dQ with atomics.
MUFU_MINIMAL = (3, 3)
# Matmuls of 2 N^2 D FLOPs per head (forward, backward): FlashAttention-2's backward has 5 (QK^T, dO V^T,
# P^T dO, dS^T Q, dS K); this kernel's atomic-free backward recomputes QK^T and dnum V~^T in both kernels -> 7.
MATMULS = {"triton": (2, 7), "sdpa": (2, 5)}
MATMULS_MINIMAL = (2, 5)
# One-pass CAT, per score: the k = 0 branch ex2, the k < 0 branch sqrt, lg2, ex2, the k > 0 branch sqrt, ex2.
CAT_MUFU = 6


def _floors(batch: int, heads: int, n: int, d: int, itemsize: int, impl: str) -> tuple[float, float]:
    """(forward, forward+backward) floor in ms: max(matmul, MUFU, memory) for ``impl``'s op counts.

    Matmul FLOPs: ``MATMULS`` matmuls of 2*N*N*D per head. Memory: q, k, v read and out written once
    forward; backward also reads out/dout and writes dq, dk, dv.
    """
    pairs = batch * heads * n * n
    mm = 2.0 * pairs * d
    mufu_fwd, mufu_bwd = MUFU_PER_SCORE.get(impl, MUFU_MINIMAL)
    fwd_mm, bwd_mm = MATMULS.get(impl, MATMULS_MINIMAL)
    bytes_fwd = 4 * batch * heads * n * d * itemsize
    fwd = max(fwd_mm * mm / PEAK_TENSOR_FLOPS, pairs * mufu_fwd / MUFU_OPS_PER_S, bytes_fwd / HBM_BYTES_PER_S)
    bwd = max(
        bwd_mm * mm / PEAK_TENSOR_FLOPS, pairs * mufu_bwd / MUFU_OPS_PER_S, 2.5 * bytes_fwd / HBM_BYTES_PER_S
    )
    return fwd * 1e3, (fwd + bwd) * 1e3


Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Impl = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def compile_unavailable(args: argparse.Namespace, device: torch.device) -> str | None:
    """Why ``torch.compile`` of the reference cannot run here (``None`` when it can): skipped in ``--smoke``
    (a CPU compile of the reference takes minutes), else probed once on a tiny function."""
    if args.smoke:
        return "--smoke"
    try:
        probe = torch.compile(lambda x: x * 2.0 + 1.0, backend=args.compile_backend)
        probe(torch.ones(8, device=device))
    except Exception as exc:  # any failure of dynamo, inductor or a missing compiler
        return f"torch.compile unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return None


def _impls(names: Sequence[str], compile_backend: str) -> dict[str, Impl]:
    from geoattn.kernels.manifold_attention import manifold_attention, manifold_attention_reference

    def triton_impl(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        return manifold_attention(q, k, v, curvature=c, beta=b, gamma=0.0, backend="triton")[0]

    def eager(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        return manifold_attention_reference(q, k, v, curvature=c, beta=b, gamma=0.0)[0]

    def sdpa(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        if not q.is_cuda:
            return F.scaled_dot_product_attention(q, k, v)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    impls: dict[str, Impl] = {"triton": triton_impl, "eager": eager, "sdpa": sdpa}
    if "compile" in names:  # default mode; one dynamic-shape compilation per pass, not one per N
        impls["compile"] = torch.compile(eager, dynamic=True, backend=compile_backend)
    return impls


def _inputs(args: argparse.Namespace, n: int, device: torch.device) -> Inputs:
    """Points inside each head's Poincaré ball (expmap0 of tangent vectors of norm ~0.5), curvature per head
    around ``args.k``, beta = 1/sqrt(D)."""
    import geoattn.manifolds as gm

    gen = torch.Generator(device=device).manual_seed(args.seed)
    kappa = args.k * (1.0 + 0.5 * torch.rand(args.heads, generator=gen, device=device))
    shape = (args.batch, args.heads, n, args.dim)

    def points() -> torch.Tensor:
        u = torch.randn(shape, generator=gen, device=device) * (0.5 / math.sqrt(args.dim))
        return gm.project(gm.expmap0(u, k=kappa.view(-1, 1, 1)), k=kappa.view(-1, 1, 1)).to(args.dtype)

    beta = torch.full((args.heads,), 1.0 / math.sqrt(args.dim), device=device)
    return points(), points(), points(), kappa, beta


def _rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-300)).item()


def _kernel_errors(fn: Impl, inputs: Inputs) -> tuple[str, str]:
    """Kernel vs the float64 reference on the first batch element and two heads: (output, max over the
    gradients of q, k, v) relative errors."""
    from geoattn.kernels.manifold_attention import manifold_attention_reference

    q, k, v, c, b = (t[:1, :2] if t.dim() == 4 else t[:2] for t in inputs)
    ins = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = fn(ins[0], ins[1], ins[2], c, b)
    w = torch.randn_like(out, dtype=torch.float64)
    grads = torch.autograd.grad((out * w.to(out.dtype)).sum(), ins)
    ref_ins = [t.detach().double().requires_grad_() for t in ins]
    ref = manifold_attention_reference(*ref_ins, curvature=c.double(), beta=b.double(), gamma=0.0)[0]
    ref_grads = torch.autograd.grad((ref * w).sum(), ref_ins)
    grad_err = max(_rel_err(g, r) for g, r in zip(grads, ref_grads, strict=True))
    return f"{_rel_err(out, ref.detach()):.1e}", f"{grad_err:.1e}"


def _measure(
    fn: Impl, inputs: Inputs, backward: bool, args: argparse.Namespace
) -> tuple[float, float | None]:
    """(median ms, peak MiB above the inputs or None on CPU) of one forward (+ backward) call."""
    q, k, v, c, b = inputs
    if backward:
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, c, b)]
        dout = torch.randn_like(q)

        def run() -> None:
            torch.autograd.backward(fn(*leaves), dout)

        grad_to_none: list[torch.Tensor] | None = leaves
    else:
        leaves, grad_to_none = list(inputs), None

        def run() -> None:
            with torch.no_grad():
                fn(*leaves)

    peak = None
    if torch.cuda.is_available():
        run()  # compile / autotune outside the timing and the memory measurement
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return median_ms(run, grad_to_none=grad_to_none, warmup=args.warmup, rep=args.rep), peak


def bench_n(
    n: int, args: argparse.Namespace, impls: dict[str, Impl], device: torch.device
) -> list[list[str]]:
    """Two rows (fwd, fwd+bwd) for sequence length ``n`` (implementations missing from ``impls``, i.e.
    ``compile`` where unavailable, get ``args.compile_skip`` in their cells)."""
    inputs = _inputs(args, n, device)
    itemsize = torch.finfo(args.dtype).bits // 8
    rows = []
    for p, backward in enumerate((False, True)):
        times: dict[str, float | str] = {}
        mems: dict[str, str] = {}
        for name in args.impls:
            if name == "compile" and (args.compile_skip or n > args.compile_max_n):
                times[name], mems[name] = f"skipped ({args.compile_skip or '--compile-max-n'})", "-"
                continue
            try:
                ms, peak = _measure(impls[name], inputs, backward, args)
                times[name], mems[name] = ms, ("-" if peak is None else f"{peak:.0f}")
            except torch.cuda.OutOfMemoryError:
                times[name], mems[name] = "OOM", "-"
            except Exception as exc:  # one failing implementation must not end the run
                times[name], mems[name] = f"error: {type(exc).__name__}: {str(exc)[:60]}", "-"
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        floors = {
            name: _floors(args.batch, args.heads, n, args.dim, itemsize, name)[p]
            for name in ("triton", "sdpa")
        }
        base = times.get("triton")
        ratios = [
            f"{base / other:.2f}x" if isinstance(base, float) and isinstance(other, float) else "-"
            for other in (times.get("sdpa"), times.get("compile"))
        ]
        over_floor = [
            f"{t / floors[name]:.1f}x" if isinstance(t := times.get(name), float) else "-"
            for name in ("triton", "sdpa")
        ]
        rows.append(
            [str(n), "fwd+bwd" if backward else "fwd"]
            + [f"{t:.3f}" if isinstance(t, float) else t for t in (times[name] for name in args.impls)]
            + [*ratios, f"{floors['triton']:.3f}", *over_floor]
            + [mems[name] for name in args.impls]
        )
    # After the timings: the check's slice shares the autotuning key of the full problem, which must tune it.
    errors = ("-", "-")
    if "triton" in args.impls and n <= args.check_max_n:
        errors = _kernel_errors(impls["triton"], inputs)
    return [[*row, err] for row, err in zip(rows, errors, strict=True)]


# ---------------------------------------------------------------------------------------------------------
# One-pass CAT: three geometries (k = 0, < 0, > 0) over shared tangent heads, forward (inference)
# ---------------------------------------------------------------------------------------------------------

CatInputs = tuple[torch.Tensor, ...]


def _cat_inputs(args: argparse.Namespace, n: int, device: torch.device) -> CatInputs:
    """Shared tangent heads (norms ~0.5), curvatures per branch and head (0; k*[1, 1.5); -k*[1, 1.5)),
    beta = 1/sqrt(D), gamma = 0 and softmax routing weights."""
    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    shape = (args.batch, args.heads, n, args.dim)
    q, k, v = (
        (torch.randn(shape, generator=gen, device=device) * (0.5 / math.sqrt(args.dim))).to(args.dtype)
        for _ in range(3)
    )
    scale = 1.0 + 0.5 * torch.rand(args.heads, generator=gen, device=device)
    kappa = torch.cat([torch.zeros_like(scale), args.k * scale, -args.k * scale])
    beta = torch.full_like(kappa, 1.0 / math.sqrt(args.dim))
    alpha = torch.softmax(torch.randn(args.batch, n, 3, generator=gen, device=device), -1)
    return q, k, v, kappa, beta, torch.zeros_like(kappa), alpha


def _cat_impls() -> dict[str, Callable[[CatInputs], torch.Tensor]]:
    """one-pass kernel; the three branches as one fused call over 3H heads (what training runs); three
    separate fused calls (one per geometry); SDPA on the same shapes (one Euclidean call)."""
    from geoattn.kernels.manifold_attention import (
        branch_points,
        cat_attention,
        manifold_attention,
        mix_branches,
    )

    def one_pass(x: CatInputs) -> torch.Tensor:
        q, k, v, kappa, beta, gamma, alpha = x
        return cat_attention(
            q, k, v, curvature=kappa, beta=beta, gamma=gamma, alpha=alpha, one_pass=True, backend="triton"
        )

    def fused_3h(x: CatInputs) -> torch.Tensor:
        q, k, v, kappa, beta, gamma, alpha = x
        points = [branch_points(t, kappa.to(t.dtype), 3) for t in (q, k, v)]
        out, _ = manifold_attention(*points, curvature=kappa, beta=beta, gamma=gamma, backend="triton")
        return mix_branches(out, kappa.to(out.dtype), alpha)

    def three_calls(x: CatInputs) -> torch.Tensor:
        q, k, v, kappa, beta, _, alpha = x
        heads = q.shape[1]
        outs = []
        for b in range(3):
            kb, betab = kappa[b * heads : (b + 1) * heads], beta[b * heads : (b + 1) * heads]
            points = [branch_points(t, kb.to(t.dtype), 1) for t in (q, k, v)]
            outs.append(manifold_attention(*points, curvature=kb, beta=betab, gamma=0.0, backend="triton")[0])
        return mix_branches(torch.cat(outs, 1), kappa.to(q.dtype), alpha)

    def sdpa(x: CatInputs) -> torch.Tensor:
        q, k, v = x[:3]
        if not q.is_cuda:
            return F.scaled_dot_product_attention(q, k, v)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    return {"one-pass": one_pass, "3H call": fused_3h, "3 calls": three_calls, "sdpa": sdpa}


CAT_HEADERS = [
    "N", "one-pass ms", "3H call ms", "3 calls ms", "sdpa ms", "3 calls/one-pass", "3H call/one-pass",
    "one-pass/sdpa", "one-pass floor ms", "one-pass/floor", "one-pass peak MiB", "one-pass err",
]  # fmt: skip


def bench_cat(n: int, args: argparse.Namespace, device: torch.device) -> list[str]:
    """One row: forward times of the CAT variants at ``n``, ratios, the floor and the one-pass error
    against the float64 reference (first batch element, N <= --check-max-n)."""
    from geoattn.kernels.manifold_attention import cat_attention_reference

    inputs = _cat_inputs(args, n, device)
    times: dict[str, float | str] = {}
    peak = "-"
    five = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4])  # what _measure's signature takes
    with torch.no_grad():
        for name, fn in _cat_impls().items():
            try:
                ms, mem = _measure(lambda *_, fn=fn: fn(inputs), five, False, args)
                times[name] = ms
                if name == "one-pass" and mem is not None:
                    peak = f"{mem:.0f}"
            except torch.cuda.OutOfMemoryError:
                times[name] = "OOM"
            except Exception as exc:  # one failing implementation must not end the run
                times[name] = f"error: {type(exc).__name__}: {str(exc)[:60]}"
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        err = "-"
        if n <= args.check_max_n:
            one = _cat_impls()["one-pass"](tuple(t[:1] if t.dim() >= 3 else t for t in inputs))
            q, k, v, kappa, beta, gamma, alpha = (t[:1] if t.dim() >= 3 else t for t in inputs)
            ref = cat_attention_reference(
                q.double(), k.double(), v.double(), curvature=kappa.double(), beta=beta.double(),
                gamma=gamma.double(), alpha=alpha.double(),
            )  # fmt: skip
            err = f"{_rel_err(one, ref):.1e}"

    def ratio(a: str, b: str) -> str:
        ta, tb = times.get(a), times.get(b)
        return f"{ta / tb:.2f}x" if isinstance(ta, float) and isinstance(tb, float) else "-"

    pairs = args.batch * args.heads * n * n
    floor = max(4 * 2.0 * pairs * args.dim / PEAK_TENSOR_FLOPS, pairs * CAT_MUFU / MUFU_OPS_PER_S) * 1e3
    one_ms = times.get("one-pass")
    return [
        str(n),
        *(
            f"{t:.3f}" if isinstance(t, float) else t
            for t in (times[k] for k in ("one-pass", "3H call", "3 calls", "sdpa"))
        ),
        ratio("3 calls", "one-pass"),
        ratio("3H call", "one-pass"),
        ratio("one-pass", "sdpa"),
        f"{floor:.3f}",
        f"{one_ms / floor:.1f}x" if isinstance(one_ms, float) else "-",
        peak,
        err,
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=None, help=f"comma-separated N (default {DEFAULT_SIZES})")
    parser.add_argument("--batch", type=int, default=4, help="batch size B (default 4)")
    parser.add_argument("--heads", type=int, default=16, help="heads H (default 16)")
    parser.add_argument("--dim", type=int, default=64, help="head dim D (default 64)")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, of {IMPLS}")
    parser.add_argument(
        "--k", type=float, default=-1.0, help="curvature scale, per head k*(1..1.5) (default -1)"
    )
    parser.add_argument(
        "--compile-backend", default="inductor", help="torch.compile backend (default inductor)"
    )
    parser.add_argument(
        "--compile-max-n", type=int, default=8192, help="largest N for torch.compile (default 8192)"
    )
    parser.add_argument(
        "--check-max-n", type=int, default=4096, help="largest N checked against float64 (default 4096)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--warmup", type=int, default=10, help="do_bench warm-up in ms (default 10)")
    parser.add_argument("--rep", type=int, default=50, help="do_bench measuring time in ms (default 50)")
    parser.add_argument(
        "--out", default=None, help="write the report (markdown) to this file (after every N)"
    )
    parser.add_argument("--no-cat", action="store_true", help="skip the one-pass CAT comparison")
    parser.add_argument(
        "--cat-sizes", default=None, help="comma-separated N for CAT (default: --sizes <= 8192)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="N = 24, B = 1, H = 1, D = 16, float32; CPU-OK; torch.compile is skipped",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.heads, args.dim, args.dtype = 1, 1, 16, "float32"
        args.sizes = args.sizes or "24"
    args.sizes = [int(s) for s in (args.sizes or DEFAULT_SIZES).split(",") if s]
    cat_sizes = args.cat_sizes.split(",") if args.cat_sizes else [str(n) for n in args.sizes if n <= 8192]
    args.cat_sizes = [] if args.no_cat else [int(s) for s in cat_sizes if s]
    args.dtype = DTYPES[args.dtype]
    args.impls = [i for i in args.impls.split(",") if i]
    if not set(args.impls) <= set(IMPLS):
        parser.error(f"--impls: accepted {IMPLS}, got {args.impls}")
    return args


def _assumptions() -> str:
    return (
        f"Floor assumptions (H200 SXM): {PEAK_TENSOR_FLOPS / 1e12:.0f} TFLOP/s dense bf16 tensor cores, "
        f"{HBM_BYTES_PER_S / 1e12:.1f} TB/s HBM, MUFU {MUFU_PER_CLOCK_PER_SM}/clock/SM x {SMS} SMs x "
        f"{CLOCK_HZ / 1e9:.2f} GHz = {MUFU_OPS_PER_S / 1e12:.2f} T transcendental ops/s. MUFU ops per score "
        f"(fwd, bwd): this kernel {MUFU_PER_SCORE['triton']} (k < 0: sqrt, lg2, ex2; the backward recomputes "
        f"in two kernels), SDPA {MUFU_PER_SCORE['sdpa']} (one exp), minimal exact distance attention "
        f"{MUFU_MINIMAL} (exp + log + sqrt). Matmuls (fwd, bwd): this kernel {MATMULS['triton']} (no atomics: "
        f"QK^T and dO V^T recomputed for dQ), SDPA {MATMULS['sdpa']} (FlashAttention-2). floor = max(matmul, "
        "MUFU, memory); `triton/floor` and `sdpa/floor` are measured time over each one's own floor."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = kernel_benchmark_device(args.smoke)  # before the kernel module (and its triton.jit) loads
    if device is None:
        return 2
    torch.manual_seed(args.seed)
    args.compile_skip = compile_unavailable(args, device) if "compile" in args.impls else None
    impls = _impls([n for n in args.impls if n != "compile" or not args.compile_skip], args.compile_backend)
    headers = ["N", "pass"] + [f"{n} ms" for n in args.impls]
    headers += ["triton/sdpa", "triton/compile", "triton floor ms", "triton/floor", "sdpa/floor"]
    headers += [f"{n} peak MiB" for n in args.impls] + ["triton err"]
    note = (
        f"B={args.batch}, H={args.heads}, D={args.dim}, {str(args.dtype).removeprefix('torch.')}, distance "
        f"score + gyro-midpoint, curvature per head in k*[1, 1.5) with k={args.k}; median ms "
        "(triton.testing.do_bench); peak MiB above the inputs; triton err: max relative error of the output "
        "(fwd row) or of dL/d(q, k, v) (fwd+bwd row) against float64 on one batch element and two heads."
        + (
            f" compile: the reference under torch.compile (backend {args.compile_backend}, default mode, "
            "dynamic shapes)" + (f", skipped: {args.compile_skip}." if args.compile_skip else ".")
            if "compile" in args.impls
            else ""
        )
    )
    config: dict[str, Any] = {
        k: (str(v) if isinstance(v, torch.dtype) else v)
        for k, v in vars(args).items()
        if k not in ("out", "compile_skip")
    }
    rows: list[list[str]] = []
    for n in args.sizes:
        try:
            rows += bench_n(n, args, impls, device)
        except torch.cuda.OutOfMemoryError:
            rows.append([str(n), "OOM (inputs or the float64 check)"])
            torch.cuda.empty_cache()
        print(f"done N={n}", file=sys.stderr, flush=True)
        table = markdown_table(headers, [r + ["-"] * (len(headers) - len(r)) for r in rows])
        body = f"{note}\n\n{_assumptions()}\n\n{table}"
        if args.out:  # partial results after every N: a timed-out run keeps what it measured
            write_report(args.out, "manifold_attention", body, seed=args.seed, config=config)
    cat_rows: list[list[str]] = []
    for n in args.cat_sizes:
        try:
            cat_rows.append(bench_cat(n, args, device))
        except torch.cuda.OutOfMemoryError:
            cat_rows.append([str(n), "OOM (inputs or the float64 check)"])
            torch.cuda.empty_cache()
        print(f"done CAT N={n}", file=sys.stderr, flush=True)
        cat_table = markdown_table(CAT_HEADERS, [r + ["-"] * (len(CAT_HEADERS) - len(r)) for r in cat_rows])
        cat_note = (
            "One-pass CAT (forward, no autograd): three branches (k = 0, k < 0, k > 0 per head) over shared "
            "tangent heads, distance + midpoint, mixed by routing weights; vs the same branches as one fused "
            "call over 3H heads (the training path), three separate fused calls, and one SDPA call. Floor: "
            f"4 matmuls (one shared QK^T, three PV) and {CAT_MUFU} MUFU ops per score (k = 0: ex2; k < 0: sqrt, "
            "lg2, ex2; k > 0: sqrt, ex2). err: against float64 on one batch element."
        )
        body = f"{note}\n\n{_assumptions()}\n\n{table}\n\n{cat_note}\n\n{cat_table}"
        if args.out:
            write_report(args.out, "manifold_attention", body, seed=args.seed, config=config)
    for name, value in environment().items():
        print(f"{name}: {value}")
    print(body)
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
