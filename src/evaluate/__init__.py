"""The evaluate step: exact test metrics, a SageMaker model-quality report, and pictures.

Modules: step (evaluate(): load, predict, write), metrics (numpy metrics), report
(evaluation.json + per_class.csv), plots (the two PNGs), cli (the entry point).
"""
