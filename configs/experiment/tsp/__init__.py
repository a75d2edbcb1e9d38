"""Hydra configs of the `experiment` group for the TSP policy (`experiment=tsp/<name>`)."""
