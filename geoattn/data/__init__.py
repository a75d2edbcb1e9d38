"""Data shipped with geoattn: the TSPLIB instance berlin52 and its optimum (see SOURCE.md)."""
