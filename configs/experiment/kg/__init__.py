"""Hydra config group `experiment`, knowledge-graph completion (`experiment=kg/<name>`)."""
