"""geoattn: geometry-aware attention and knowledge-graph learning.

Subpackages: :mod:`geoattn.manifolds` (κ-stereographic math), :mod:`geoattn.kernels` (Triton kernels with
torch references), :mod:`geoattn.nn` (attention modules and PyG layers), :mod:`geoattn.hierarchy` (nested
signals for hierarchical attention), :mod:`geoattn.datasets` (graph datasets, offline-capable),
:mod:`geoattn.kg` (PyKEEN integration), :mod:`geoattn.train` (the Hydra training entry point) and
:mod:`geoattn.configs` (packaged Hydra configs).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geoattn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
