"""Hydra config group `model/curvature`: curvature modules for models that take one."""
