"""A task module that does not load in a subinterpreter (for tests/test_dask.py): it imports
psutil, whose extension module refuses isolated interpreters."""

from __future__ import annotations

import psutil


def pid() -> int:
    """The worker's process id, by psutil."""
    return int(psutil.Process().pid)
