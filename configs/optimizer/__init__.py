"""Hydra config group `optimizer`."""
