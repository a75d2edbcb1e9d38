"""Problems for pointer networks and TSP solvers: instances, exact labels, metrics, TSPLIB files, tour checks.

The problem layer is separate from any model: it generates instances, labels them exactly, checks decoded
solutions (every tour must be a permutation) and recomputes their cost independently.

- Instances: :func:`uniform_points` (``[B, n, 2]`` in the unit square, seeded).
- Labels in the Pointer Networks convention (Vinyals et al., NeurIPS 2015): :func:`convex_hull_label`
  (lowest index first, counter-clockwise), :func:`delaunay_label` (sorted triples ordered by incenter),
  :func:`tsp_label` (exact :func:`held_karp` for ``n <= 12``, LKH-3 :func:`lkh_tour` above; LKH needs the
  ``baselines`` extra); :func:`labelled_dataset` / :func:`compute_labels` run them in parallel and cache.
- Metrics: :func:`hull_accuracy`, :func:`hull_area_coverage` (with the FAIL rule), :func:`delaunay_accuracy`,
  :func:`triangle_coverage`, :func:`average_tour_length`; :func:`tour_length` (batched torch).
- Tours: :func:`check_tour` / :func:`check_tours` (permutation checks with clear messages),
  :func:`canonical_tour`.
- Files: :func:`read_tsplib` (``.tsp`` via vrplib), :func:`read_tsplib_tour` (``.opt.tour``),
  :func:`read_coordinates` (``.csv`` / ``.npy``), :func:`read_tsp_instance` (any of them), with the TSPLIB
  distance rules of :mod:`geoattn.tasks.tsplib_distance` (``EUC_2D``, ``CEIL_2D``, ``ATT``, ``GEO``).
"""

from .convex_hull import convex_hull_label, convex_hull_labels
from .coordinates import (
    MAX_CITIES,
    MIN_CITIES,
    check_coordinates,
    duplicate_groups,
    read_coordinates,
)
from .delaunay import delaunay_label, delaunay_labels, incenters
from .held_karp import HELD_KARP_MAX_CITIES, held_karp
from .labels import (
    TASKS,
    LabelledDataset,
    Task,
    cache_path,
    compute_labels,
    label_instance,
    labelled_dataset,
)
from .lkh import elkai_available, lkh_tour, require_elkai
from .metrics import (
    AREA_FAIL_THRESHOLD,
    AreaCoverage,
    average_tour_length,
    delaunay_accuracy,
    hull_accuracy,
    hull_area_coverage,
    is_simple_polygon,
    polygon_area,
    triangle_coverage,
)
from .points import uniform_points
from .tour import canonical_tour, check_tour, check_tours, euclidean_distance_matrix
from .tsp import TSP_EXACT_MAX_CITIES, TspSolver, tour_length, tsp_label, tsp_labels
from .tsplib import TsplibInstance, read_optima_csv, read_tsp_instance, read_tsplib, read_tsplib_tour
from .tsplib_distance import (
    SUPPORTED_EDGE_WEIGHT_TYPES,
    EdgeWeightType,
    tsplib_distance,
    tsplib_distance_matrix,
    tsplib_tour_length,
)

__all__ = [
    "AREA_FAIL_THRESHOLD",
    "HELD_KARP_MAX_CITIES",
    "MAX_CITIES",
    "MIN_CITIES",
    "SUPPORTED_EDGE_WEIGHT_TYPES",
    "TASKS",
    "TSP_EXACT_MAX_CITIES",
    "AreaCoverage",
    "EdgeWeightType",
    "LabelledDataset",
    "Task",
    "TspSolver",
    "TsplibInstance",
    "average_tour_length",
    "cache_path",
    "canonical_tour",
    "check_coordinates",
    "check_tour",
    "check_tours",
    "compute_labels",
    "convex_hull_label",
    "convex_hull_labels",
    "delaunay_accuracy",
    "delaunay_label",
    "delaunay_labels",
    "duplicate_groups",
    "elkai_available",
    "euclidean_distance_matrix",
    "held_karp",
    "hull_accuracy",
    "hull_area_coverage",
    "incenters",
    "is_simple_polygon",
    "label_instance",
    "labelled_dataset",
    "lkh_tour",
    "polygon_area",
    "read_coordinates",
    "read_optima_csv",
    "read_tsp_instance",
    "read_tsplib",
    "read_tsplib_tour",
    "require_elkai",
    "tour_length",
    "triangle_coverage",
    "tsp_label",
    "tsp_labels",
    "tsplib_distance",
    "tsplib_distance_matrix",
    "tsplib_tour_length",
    "uniform_points",
]
