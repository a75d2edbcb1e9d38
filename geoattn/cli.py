"""The ``geoattn`` command: ``geoattn --version``, ``geoattn info`` and ``geoattn solve-tsp`` (:mod:`geoattn.cli_tsp`).

Small commands stay plain argparse; training jobs go through the single Hydra entry point ``geoattn-train``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from geoattn import __version__
from geoattn.cli_tsp import add_parser as add_solve_tsp_parser

__all__ = ["build_parser", "main"]


def _info(_: argparse.Namespace) -> int:
    from geoattn.environment import collect_environment

    print("\n".join(collect_environment().lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``geoattn`` with one sub-command per task."""
    parser = argparse.ArgumentParser(
        prog="geoattn", description="Geometry-aware attention: tools and solvers."
    )
    parser.add_argument("--version", action="version", version=f"geoattn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info", help="print package versions, CUDA availability and the backend each kernel uses"
    )
    info.set_defaults(handler=_info)
    add_solve_tsp_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geoattn`` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    status: int = args.handler(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
