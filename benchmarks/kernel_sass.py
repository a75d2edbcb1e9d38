"""Instructions per score of the manifold-attention kernels, counted in their machine code without a GPU.

The fused kernels are bound by instruction issue, not by tensor-core FLOPs, transcendental (MUFU) throughput or
memory (``benchmarks/manifold_attention.py``: the forward runs at 4x its own floor at N = 4096), so the number
that predicts their speed is how many instructions each attention score costs. This script compiles each kernel
for a GPU architecture with Triton's own compiler (offline: ``triton.compile`` with a target, pointers
16-byte aligned and N, M multiples of 16 as a launch specialises them), disassembles the cubin with the
``nvdisasm`` shipped in Triton's wheel and finds the tile loops (the bodies of backward branches). For every tile
configuration in each kernel's autotuning list (forward and both backward kernels) it prints the first tile loop
— the ``k < -K_EXACT`` arm's; each kernel holds one copy of the loop per curvature arm, and the forward two per
arm, for complete and for masked tiles; ``--all-loops`` lists them all, in code order — with its instructions
per iteration, the scores each thread owns per iteration (``BLOCK_N * BLOCK_M / (32 warps)``), the instructions
issued per score and their split into float, MUFU, integer/address, memory and other instructions. A score costs
one ``exp2``; where a loop holds two per owned score, two threads compute every score (the tile's layout is
replicated across warps) and the configuration wastes half its issue slots.

Static counts, not a profile: they say where the work is and whether a change shrinks it, not the time::

    python benchmarks/kernel_sass.py --out benchmarks/results/kernel_sass.md
    python benchmarks/kernel_sass.py --smoke     # the forward kernel only (the tests run this)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py
from _common import markdown_table, write_report

NVDISASM = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
#: The kernels counted (``kernel.py``'s names): the forward and the two backward kernels, each in every tile
#: configuration its autotuning list offers (which one the H200 picks is not recorded).
KERNELS = {"fwd": "forward", "dkdv": "backward dK/dV", "dq": "backward dQ"}
_INT = ("IADD", "IMAD", "LOP", "LEA", "ISETP", "SHF", "SEL", "MOV", "UIADD", "UMOV", "ULOP", "USEL", "ULEA",
        "UISETP", "USHF", "PLOP", "VIADD", "CS2R", "PRMT", "UIMAD", "USGXT", "ULDC", "IABS", "I2F", "F2I")  # fmt: skip
_MEMORY = ("LDG", "STG", "LDS", "STS", "LDSM", "STSM", "LDGSTS", "LDGDEPBAR", "DEPBAR", "SHFL")


@dataclass(frozen=True)
class Loop:
    """One tile loop: its instructions per iteration and their opcodes (without predicates and modifiers)."""

    instructions: int
    opcodes: Counter[str]
    mufu: Counter[str]


def compile_cubin(name: str, config: triton.Config, dim: int, arch: int) -> bytes:
    """The cubin of kernel ``name`` (:data:`KERNELS`) in tile ``config`` for ``sm_<arch>``: bfloat16 inputs, head
    dim ``dim``, the distance score with the gyro-midpoint, no masks (and the curvature gradient in dQ)."""
    from geoattn.kernels.manifold_attention import kernel as ma

    fn = ma._KERNELS[name][0]
    constants: dict[str, Any] = {
        "D": dim, "DV": dim, "BLOCK_D": triton.next_power_of_2(dim), "BLOCK_DV": triton.next_power_of_2(dim),
        "DISTANCE": True, "MIDPOINT": True, "CAUSAL": False, "HAS_KPM": False, "INTERPRET": False, **config.kwargs,
    }  # fmt: skip
    if "KAPPA_GRAD" in fn.arg_names:
        constants["KAPPA_GRAD"] = True
    pointers = [a for a in fn.arg_names if a.endswith("_ptr")]
    inputs = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "out_ptr": "*bf16", "kpm_ptr": "*u8"}
    types = {a: inputs.get(a, "*fp32") for a in pointers}
    types |= {a: "fp32" for a in ("sm_scale", "min_den", "artanh_bound")}
    signature = {a: "constexpr" if a in constants else types.get(a, "i32") for a in fn.arg_names}
    aligned = {(fn.arg_names.index(a),): [["tt.divisibility", 16]] for a in [*pointers, "N", "M"]}
    source = ASTSource(fn=fn, signature=signature, constexprs=constants, attrs=aligned)
    options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    return bytes(triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options).asm["cubin"])


def tile_loops(cubin: bytes, min_length: int = 100) -> list[Loop]:
    """The loops of ``cubin`` with at least ``min_length`` instructions, in code order: for every branch to an
    earlier label, the instructions from that label to the branch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        sass = subprocess.run(
            [str(NVDISASM), "-c", str(path)], capture_output=True, text=True, check=True
        ).stdout
    labels: dict[str, int] = {}
    code: list[str] = []
    for line in sass.splitlines():
        if label := re.match(r"^\s*(\.L_x_\d+):", line):
            labels[label.group(1)] = len(code)
        elif found := re.match(r"^\s*/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line):
            code.append(found.group(1))
    loops = []
    for end, instruction in enumerate(code):
        target = re.search(r"\bBRA\b.*?(\.L_x_\d+)", instruction)
        start = labels.get(target.group(1), end) if target else end
        if end - start + 1 >= min_length:
            body = code[start : end + 1]
            opcodes = Counter(re.sub(r"^@!?U?P[T\d]+\s+", "", b).split()[0] for b in body)
            mufu = Counter(op.split(".")[1] for op in opcodes.elements() if op.startswith("MUFU."))
            loops.append(Loop(len(body), Counter(op.split(".")[0] for op in opcodes.elements()), mufu))
    return loops


def _classes(loop: Loop) -> dict[str, int]:
    out = Counter[str]()
    for op, count in loop.opcodes.items():
        if op == "MUFU":
            out["MUFU"] += count
        elif op.startswith(("F", "HFMA", "HADD", "HMUL")) and not op.startswith("FENCE"):
            out["float"] += count
        elif op.startswith(_INT):
            out["int/addr"] += count
        elif op.startswith(_MEMORY):
            out["memory"] += count
        else:
            out["other"] += count
    return out


def rows(name: str, config: triton.Config, loops: list[Loop], all_loops: bool) -> list[list[str]]:
    """Table rows of one compiled kernel: its first tile loop (the ``k < -K_EXACT`` arm), or every loop."""
    per_thread = config.kwargs["BLOCK_N"] * config.kwargs["BLOCK_M"] // (32 * config.num_warps)
    tile = f"{config.kwargs['BLOCK_N']}x{config.kwargs['BLOCK_M']}, {config.num_warps} warps, {config.num_stages} st."
    out = []
    for index, loop in enumerate(loops if all_loops else loops[:1]):
        classes = _classes(loop)
        # every score takes one exp2 (the forward's few more rescale the rows): two per score means that
        # two threads compute each score, a layout that replicates the tile across warps
        replication = max(1, loop.mufu["EX2"] // per_thread)
        mufu = " ".join(f"{op} {count / per_thread:.2g}" for op, count in sorted(loop.mufu.items()))
        shares = [f"{classes[c] / per_thread:.1f}" for c in ("float", "MUFU", "int/addr", "memory", "other")]
        row = [KERNELS[name], tile, f"{index} of {len(loops)}", mufu or "-", str(loop.instructions)]
        out.append(
            [*row, str(per_thread), f"{replication}x", f"{loop.instructions / per_thread:.1f}", *shares]
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", default=",".join(KERNELS), help="comma list of %(default)s")
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (default 90: Hopper)")
    parser.add_argument("--dim", type=int, default=64, help="head dim D (default 64)")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here")
    parser.add_argument("--all-loops", action="store_true", help="every tile loop, not only the first")
    parser.add_argument("--smoke", action="store_true", help="the forward kernel's first configuration only")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        # Triton fixes the mode when triton.language is first imported (above): under the interpreter its JIT
        # functions are interpreted ones, which compile to nothing (Triton 3.9's compiler refuses them outright).
        sys.exit(
            f"kernel_sass: TRITON_INTERPRET={os.environ['TRITON_INTERPRET']!r} runs Triton's interpreter, which "
            "compiles nothing; run with TRITON_INTERPRET=0 (or unset)"
        )
    from geoattn.kernels.manifold_attention import kernel as ma

    names = ["fwd"] if args.smoke else [k for k in args.kernels.split(",") if k]
    unknown = [k for k in names if k not in KERNELS]
    if unknown:
        parser.error(f"--kernels: unknown {unknown}; accepted: {list(KERNELS)}")
    if not NVDISASM.is_file():
        sys.exit(f"kernel_sass: no nvdisasm at {NVDISASM}: this Triton wheel ships no NVIDIA tools")
    table = []
    for name in names:
        for config in ma._CONFIGS[name][:1] if args.smoke else ma._CONFIGS[name]:
            loops = tile_loops(compile_cubin(name, config, args.dim, args.arch))
            table += rows(name, config, loops, args.all_loops)
    headers = ["kernel", "tile", "loop", "MUFU per score", "instructions", "scores/thread", "replication",
               "per score", "float", "MUFU", "int/addr", "memory", "other"]  # fmt: skip
    body = (
        f"sm_{args.arch}, bfloat16, D = {args.dim}, distance score + gyro-midpoint, no masks; Triton "
        f"{triton.__version__}. Per kernel and tile configuration, its first tile loop (the k < -0.5 arm); "
        "`per score` = instructions / (scores per thread), and the last five columns split it by class; "
        "replication 2x: two threads compute each score.\n\n" + markdown_table(headers, table)
    )
    config = {k: v for k, v in vars(args).items() if k != "out"}
    if args.out is None:
        print(body)
        return
    print(write_report(args.out, "kernel_sass", body, seed=0, config=config))


if __name__ == "__main__":
    main()
