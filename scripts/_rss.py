"""Memory readings shared by ``scripts/leakcheck.py``, ``scripts/soak.py`` and the benchmarks'
memory case (``bench/harness.py``).

Imported by name: each user puts this directory on ``sys.path`` first, so this works for
``python scripts/X.py``, for ``runpy.run_path`` (as ``tests/test_stress.py`` does) and for
``python -m bench`` from the repository root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import os

__all__ = ["MIB", "malloc_trim", "pss_bytes", "rss_bytes", "settled_rss"]

MIB = 2**20


def malloc_trim() -> None:
    """Give freed malloc memory back to the OS (glibc), so RSS shows what is still in use."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim(ctypes.c_size_t(0))
    except (OSError, AttributeError, TypeError):
        pass


def rss_bytes() -> int:
    """The resident set size of this process (``/proc/self/statm``, else ``psutil``)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        psutil = importlib.import_module("psutil")
        return int(psutil.Process().memory_info().rss)


def settled_rss() -> int:
    """The resident set size after ``gc.collect()`` and :func:`malloc_trim`."""
    gc.collect()
    malloc_trim()
    return rss_bytes()


def pss_bytes(pid: int) -> tuple[int, str]:
    """Another process's proportional set size (its shared pages split between the processes
    that share them, ``/proc/PID/smaps_rollup``) and ``"PSS"``; where that is missing, its
    resident set size and ``"RSS"``."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024, "PSS"
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024, "RSS"
    except OSError:
        pass
    psutil = importlib.import_module("psutil")
    return int(psutil.Process(pid).memory_info().rss), "RSS"
