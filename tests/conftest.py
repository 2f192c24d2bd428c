"""Shared pytest configuration of the test suite.

``--soak`` is the same switch as ``SUBINTERP_SOAK=1``: stress tests run for minutes instead of
seconds. It sets the environment variable (before any test module is imported), so helpers that
read it, and subprocesses the tests start, all see it.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the stress tests for minutes (same as SUBINTERP_SOAK=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--soak"):
        os.environ["SUBINTERP_SOAK"] = "1"
