"""The train step: the entry point is gtsrb.train.cli, the step gtsrb.train.step.

Every entry point imports this package before MXNet loads, so MXNet's OpenMP thread count is set
here: one thread per physical core (gtsrb.common.openmp_threads).
"""

from gtsrb.common.openmp_threads import use_physical_cores

use_physical_cores()
