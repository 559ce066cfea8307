"""The evaluate step: exact test metrics, a SageMaker model-quality report, and pictures.

Modules: step (evaluate(): load, predict, write), metrics (numpy metrics), report
(evaluation.json + per_class.csv), plots (the two PNGs), cli (the entry point). MXNet's OpenMP
threads are set here, before it loads: one per physical core (gtsrb.common.openmp_threads).
"""

from gtsrb.common.openmp_threads import use_physical_cores

use_physical_cores()
