"""What this installation runs on: package versions, CUDA, and the backend each kernel picks."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch

from geoattn.kernels import KERNELS, triton_available

__all__ = ["REPORTED_PACKAGES", "EnvironmentReport", "collect_environment", "package_version"]

# Distribution names whose versions `geoattn info` and run metadata report.
REPORTED_PACKAGES = ("geoattn", "torch", "triton", "torch_geometric", "pykeen", "geoopt", "hydra-core")


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` when it is not installed."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class EnvironmentReport:
    """Package versions, the CUDA device (if any) and the backend ``backend="auto"`` picks per kernel."""

    versions: dict[str, str | None]
    cuda_available: bool
    cuda_device: str | None
    kernel_backends: dict[str, str]

    def lines(self) -> list[str]:
        """Human-readable report, one fact per line."""
        out = [f"{name:<16} {ver or 'not installed'}" for name, ver in self.versions.items()]
        out.append(f"{'cuda':<16} {'yes: ' + self.cuda_device if self.cuda_device else 'no'}")
        out += [f"kernel {name:<9} {backend}" for name, backend in self.kernel_backends.items()]
        return out


def collect_environment() -> EnvironmentReport:
    """Read the environment without importing the heavy optional packages (versions come from metadata)."""
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else None
    if cuda and triton_available():
        backend = "triton (CUDA tensors); torch reference for CPU tensors"
    elif cuda:
        backend = "torch reference (triton is not installed)"
    else:
        backend = "torch reference (no CUDA device)"
    return EnvironmentReport(
        versions={name: package_version(name) for name in REPORTED_PACKAGES},
        cuda_available=cuda,
        cuda_device=device,
        kernel_backends=dict.fromkeys(KERNELS, backend),
    )
