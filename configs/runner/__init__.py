"""Hydra config group `runner`."""
