"""A built-in, deterministic GTSRB-like dataset, so the project runs end to end with no download."""

from gtsrb.demo_data.writer import generate

__all__ = ["generate"]
