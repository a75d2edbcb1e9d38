"""What this installation runs on: package versions, CUDA, and the backend each kernel picks."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch

from geoattn.kernels import KERNELS, triton_available, triton_implemented
from geoattn.kernels.backend import UNVERIFIED_ON_GPU

__all__ = [
    "REPORTED_PACKAGES",
    "EnvironmentReport",
    "collect_environment",
    "kernel_backend",
    "package_version",
]

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
        out += [f"kernel {name:<18} {backend}" for name, backend in self.kernel_backends.items()]
        return out


def kernel_backend(op: str, *, cuda: bool) -> str:
    """What ``backend="auto"`` runs for kernel ``op`` here, in words (truthful per kernel)."""
    if not triton_implemented(op):
        return "torch reference (no Triton kernel yet)"
    if op in UNVERIFIED_ON_GPU:
        return "torch reference (Triton kernel not yet tested on a GPU: backend='triton' opts in)"
    if cuda and triton_available():
        return "triton (CUDA tensors); torch reference for CPU tensors"
    if cuda:
        return "torch reference (triton is not installed)"
    return "torch reference (no CUDA device)"


def collect_environment() -> EnvironmentReport:
    """Read the environment without importing the heavy optional packages (versions come from metadata)."""
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else None
    return EnvironmentReport(
        versions={name: package_version(name) for name in REPORTED_PACKAGES},
        cuda_available=cuda,
        cuda_device=device,
        kernel_backends={name: kernel_backend(name, cuda=cuda) for name in KERNELS},
    )
