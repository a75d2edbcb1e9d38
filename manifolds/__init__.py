"""Manifold math for geoattn: the κ-stereographic model with one signed curvature ``k``.

``k < 0``: Poincaré ball (hyperbolic); ``k = 0``: Euclidean; ``k > 0``: projected sphere. Built on geoopt's
stereographic math; adds pairwise distance matrices from a Gram matrix, gyro-midpoint aggregation,
curvature parametrisations and dtype-aware numerics (:mod:`geoattn.manifolds.numerics`).
"""

from . import numerics
from .curvature import (
    CurvatureModule,
    FixedCurvature,
    HyperbolicCurvature,
    SignedCurvature,
    SphericalCurvature,
)
from .distance import pairwise_dist, pairwise_sqdist
from .midpoint import gyro_midpoint, midpoint_from_sums, midpoint_summands
from .stereographic import (
    CurvatureLike,
    artan_k,
    as_curvature,
    dist,
    expmap0,
    lambda_x,
    logmap0,
    mobius_add,
    mobius_scalar_mul,
    project,
    sqdist,
    tan_k,
)

__all__ = [
    "CurvatureLike",
    "CurvatureModule",
    "FixedCurvature",
    "HyperbolicCurvature",
    "SignedCurvature",
    "SphericalCurvature",
    "artan_k",
    "as_curvature",
    "dist",
    "expmap0",
    "gyro_midpoint",
    "lambda_x",
    "logmap0",
    "midpoint_from_sums",
    "midpoint_summands",
    "mobius_add",
    "mobius_scalar_mul",
    "numerics",
    "pairwise_dist",
    "pairwise_sqdist",
    "project",
    "sqdist",
    "tan_k",
]
