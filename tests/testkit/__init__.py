"""Helpers the tests share, one module per area (`from testkit.train import FAST_HPS`); tests/ is on pytest's pythonpath."""
