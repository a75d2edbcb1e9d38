"""The specification of :func:`geoattn.kernels.pairwise_dist.pairwise_dist`: the pure-torch manifold op.

The math lives once, in :mod:`geoattn.manifolds.distance`; this module only names it as the reference the
Triton kernel is tested against (``x [..., N, D]``, ``y [..., M, D]``, ``k`` broadcastable to ``[..., N, 1]``
-> ``[..., N, M]``).
"""

from __future__ import annotations

from ...manifolds.distance import pairwise_dist as pairwise_dist_reference
from ...manifolds.distance import pairwise_sqdist as pairwise_sqdist_reference

__all__ = ["pairwise_dist_reference", "pairwise_sqdist_reference"]
