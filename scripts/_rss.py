"""Memory readings shared by ``scripts/leakcheck.py`` and ``scripts/soak.py``.

Imported by name: each script puts its own directory on ``sys.path`` first, so this works
both for ``python scripts/X.py`` and for ``runpy.run_path`` (as ``tests/test_stress.py`` does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import os

__all__ = ["MIB", "malloc_trim", "rss_bytes", "settled_rss"]

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
