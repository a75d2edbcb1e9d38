"""Graph datasets for node classification, loaded offline from a data root or through PyG.

- :func:`load_node_dataset`: Cora, CiteSeer, Airport, Disease by name, with split masks (the protocols are
  in :mod:`geoattn.datasets.node_datasets`); the root defaults to ``$GEOATTN_DATA``.
- :func:`load_planetoid` / :func:`copy_planetoid_raw`: PyG's ``Planetoid`` loader, optionally fed from a
  read-only raw copy.
- :func:`read_airport` / :func:`read_disease`: readers of the HGCN benchmark files.
- :func:`stratified_split`: seeded per-class splits (proportional, or HGCN's balanced rule).
"""

from .hgcn import AirportFeatures, DiseaseFeatures, degree_features, read_airport, read_disease
from .node_datasets import DATA_ENV, DEFAULT_SPLIT_SEED, NODE_DATASETS, default_data_root, load_node_dataset
from .planetoid import PLANETOID_NAMES, copy_planetoid_raw, load_planetoid, planetoid_name
from .splits import stratified_split

__all__ = [
    "DATA_ENV",
    "DEFAULT_SPLIT_SEED",
    "NODE_DATASETS",
    "PLANETOID_NAMES",
    "AirportFeatures",
    "DiseaseFeatures",
    "copy_planetoid_raw",
    "default_data_root",
    "degree_features",
    "load_node_dataset",
    "load_planetoid",
    "planetoid_name",
    "read_airport",
    "read_disease",
    "stratified_split",
]
