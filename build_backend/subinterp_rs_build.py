"""The PEP 517 build backend of subinterp-rs: maturin's, plus a clear message without Rust.

pip uses it only when it found no wheel for the running Python and platform, and builds the
source distribution instead. That build compiles Rust. When ``cargo`` is not on ``PATH``,
maturin (1.8+) first tries to download a Rust toolchain into a cache directory (with the
``puccinialin`` package); where that cannot work (offline, a proxy, a TLS-inspecting
firewall) the build ends in a long traceback that says neither why pip is building at all nor
what to do. Every hook here is maturin's own; the ones that run cargo, when cargo was missing,
also print which platforms have wheels and how to get Rust (``pyproject.toml``:
``backend-path``). Nothing else changes: with cargo on ``PATH`` the build is maturin's.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys
import sysconfig
import traceback
from collections.abc import Callable
from typing import Any

_maturin: Any = importlib.import_module("maturin")

# Keep in step with docs/platforms.md, .github/workflows/release.yml and Cargo.toml's
# rust-version (below).
_WHEELS = """\
Releases of subinterp-rs on PyPI have wheels (no Rust needed) for CPython 3.12, 3.13,
3.14 and 3.15 on:
  - Linux x86_64 and aarch64, glibc 2.17 or newer (manylinux2014) or musl (musllinux_1_2)
  - macOS arm64 and x86_64
  - Windows x86_64
(and, experimental, free-threaded 3.14t on those)."""

_NO_CARGO = """
subinterp-rs: pip is building subinterp-rs from its source distribution (no wheel fitted
this Python and platform, or pip was asked to build), and that needs Rust: cargo and rustc
1.83 or newer. cargo is not on PATH.
  this Python: {python} on {platform}{download}
{wheels}
Where one of those fits, upgrade pip (python -m pip install --upgrade pip: an old pip
does not know the newer wheel tags) and install again. Elsewhere, install Rust
(https://rustup.rs, or your distribution's cargo package), put cargo on PATH, and install
again.
"""


def _python() -> str:
    free_threaded = " (free-threaded)" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    version = ".".join(map(str, sys.version_info[:3]))
    return f"{sys.implementation.name} {version}{free_threaded}"


def _message() -> str:
    if os.environ.get("MATURIN_NO_INSTALL_RUST"):
        download = ""
    else:
        download = (
            "\nmaturin first tried to download Rust by itself (MATURIN_NO_INSTALL_RUST=1 skips"
            " that);\nthe error above says how that, or the build after it, failed."
        )
    return _NO_CARGO.format(
        python=_python(), platform=sysconfig.get_platform(), download=download, wheels=_WHEELS
    )


def _explain() -> None:
    sys.stdout.flush()  # maturin's lines before ours
    sys.stderr.write(_message())
    sys.stderr.flush()


def _explained(name: str) -> Callable[..., Any]:
    """maturin's hook ``name``, which says what to do when it fails without cargo."""
    hook: Callable[..., Any] = getattr(_maturin, name)

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        no_cargo = shutil.which("cargo") is None
        try:
            return hook(*args, **kwargs)
        except SystemExit as exc:  # maturin's own "Cargo ... is not installed" exit
            if no_cargo and exc.code not in (0, None):
                _explain()
            raise
        except Exception:  # the download of Rust (puccinialin) failed, or the build did
            if not no_cargo:
                raise
            # The traceback first, the way out last: what a user reads at the end of pip's
            # output is what to do.
            traceback.print_exc()
            _explain()
            raise SystemExit(1) from None

    return run


# The hooks that run cargo (maturin looks for Rust, and fetches it, in each of them).
build_wheel = _explained("build_wheel")
build_sdist = _explained("build_sdist")
build_editable = _explained("build_editable")
prepare_metadata_for_build_wheel = _explained("prepare_metadata_for_build_wheel")
prepare_metadata_for_build_editable = _explained("prepare_metadata_for_build_editable")

# The ones that only list requirements (puccinialin when cargo is missing), unchanged.
get_requires_for_build_wheel = _maturin.get_requires_for_build_wheel
get_requires_for_build_editable = _maturin.get_requires_for_build_editable
get_requires_for_build_sdist = _maturin.get_requires_for_build_sdist
