"""Hydra configs shipped with geoattn, found by Hydra as ``pkg://geoattn.configs``."""
