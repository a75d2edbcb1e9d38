"""Hydra config group `trainer`."""
