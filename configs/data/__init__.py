"""Hydra config group `data`."""
