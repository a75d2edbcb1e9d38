"""Hydra configs of the `experiment` group for the HSA classification comparisons (`experiment=hsa/<name>`)."""
