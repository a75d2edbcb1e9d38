"""Hydra config group `model`."""
