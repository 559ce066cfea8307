"""A built-in, deterministic GTSRB-like dataset, so the project runs end to end with no download."""
