"""Hydra config group `experiment`."""
