"""How long a notebook took and how much memory it needed: the figures in the index.

Taught in notebook 00_index (every notebook prints them in its last cell).
"""

from __future__ import annotations

import sys
import time

_STARTED = time.perf_counter()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MB. Taught in notebook 00_index."""
    try:
        import resource
    except ImportError:  # Windows: psutil comes with Jupyter's kernel
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs kB


def run_summary() -> str:
    """One line: seconds since ``vae_tutorial`` was imported and the peak memory so far.

    Every notebook prints it last. Taught in notebook 00_index.
    """
    return (
        f"Run time: {time.perf_counter() - _STARTED:.0f} s since import; "
        f"peak memory: {peak_memory_mb():.0f} MB"
    )
