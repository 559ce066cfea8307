"""GTSRB traffic-sign classification steps (the folder src/ is this package)."""
