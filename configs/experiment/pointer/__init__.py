"""Hydra configs of the `experiment` group for the pointer-network tasks (`experiment=pointer/<name>`)."""
