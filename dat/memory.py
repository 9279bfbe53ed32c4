"""Keep freed memory in the process: the CPU training path is otherwise bound by page faults.

glibc serves every allocation above its mmap threshold (32 MB at most) with a fresh
``mmap`` and returns it to the kernel on ``free``; the next step page-faults all of it
back in. A SampleCNN step allocates and frees several such activation tensors, so on
this project's 2-core machine the ``cpu-samplecnn`` preset took 197,000 minor page
faults per step and spent nearly as much time in the kernel as in computing; with
``M_MMAP_MAX = 0`` (and no trimming) the same step takes none and runs about twice as
fast with one thread (``benchmarks/bench_dat_step.py``). The memory stays with the
process (the peak of one step), which a training process would reuse anyway. Results do
not change (tested: the same tiny training with and without it gives identical weights).
``DAT_KEEP_FREED_MEMORY=0`` in the environment turns it off. Loader workers forked from
the trainer inherit the setting (glibc's state is copied by fork).
"""

from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; False where there is no glibc
    or where ``DAT_KEEP_FREED_MEMORY=0`` turns it off."""
    if os.environ.get("DAT_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    return ok and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
