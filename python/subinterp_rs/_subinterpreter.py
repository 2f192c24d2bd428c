"""The low-level API: :class:`InterpreterConfig` and :class:`Subinterpreter`, which mirror the
Rust core's ``Config`` and ``Subinterpreter`` (themselves after pybind11's
``subinterpreter.h``). Re-exported by ``subinterp_rs``, whose names they carry.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from types import CodeType, TracebackType
from typing import Any, Literal, Self

from . import _native_api
from ._errors import InterpreterError
from ._preimport import import_in_main_first, setup_for_new_interpreter

__all__ = ["GilKind", "InterpreterConfig", "Subinterpreter"]

GilKind = Literal["default", "shared", "own"]


_CONFIG_FIELDS = (
    "use_main_obmalloc",
    "allow_fork",
    "allow_exec",
    "allow_threads",
    "allow_daemon_threads",
    "check_multi_interp_extensions",
    "gil",
)


class InterpreterConfig:
    """The settings of a new interpreter: the fields of CPython's ``PyInterpreterConfig``.

    Frozen, keyword-only. The default is :meth:`isolated`. Invalid combinations raise
    ``ValueError`` here, before CPython sees them.

    * ``use_main_obmalloc``: allocate objects from the main interpreter's allocator (needs
      ``gil != "own"``);
    * ``allow_fork`` / ``allow_exec``: allow ``os.fork()`` / ``os.exec*()`` inside;
    * ``allow_threads`` / ``allow_daemon_threads``: allow ``threading`` (daemon) threads;
    * ``check_multi_interp_extensions``: refuse extension modules that do not support
      several interpreters;
    * ``gil``: ``"own"`` (a GIL of its own: parallel), ``"shared"`` (the main GIL) or
      ``"default"``. The same on free-threaded CPython (3.14t): the native module needs the
      GIL, so importing this package enables the main interpreter's, and each interpreter
      it creates enables its own (unless ``PYTHON_GIL=0``); see docs/platforms.md.
    """

    # A plain class, not a dataclass: importing `dataclasses` costs every subinterpreter
    # that imports this package tens of milliseconds.
    __slots__ = _CONFIG_FIELDS

    use_main_obmalloc: bool
    allow_fork: bool
    allow_exec: bool
    allow_threads: bool
    allow_daemon_threads: bool
    check_multi_interp_extensions: bool
    gil: GilKind

    def __init__(
        self,
        *,
        use_main_obmalloc: bool = False,
        allow_fork: bool = False,
        allow_exec: bool = False,
        allow_threads: bool = True,
        allow_daemon_threads: bool = False,
        check_multi_interp_extensions: bool = True,
        gil: GilKind = "own",
    ) -> None:
        values = (
            use_main_obmalloc,
            allow_fork,
            allow_exec,
            allow_threads,
            allow_daemon_threads,
            check_multi_interp_extensions,
        )
        for name, value in zip(_CONFIG_FIELDS, values, strict=False):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
        if gil not in ("default", "shared", "own"):
            raise ValueError(f"gil must be 'default', 'shared' or 'own', got {gil!r}")
        if gil == "own" and use_main_obmalloc:
            raise ValueError(
                "gil='own' needs use_main_obmalloc=False: an interpreter with its own GIL "
                "must have its own object allocator"
            )
        if not use_main_obmalloc and not check_multi_interp_extensions:
            raise ValueError(
                "use_main_obmalloc=False needs check_multi_interp_extensions=True: "
                "single-phase init extension modules cannot be shared between allocators"
            )
        for name, field in zip(_CONFIG_FIELDS, (*values, gil), strict=True):
            object.__setattr__(self, name, field)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"InterpreterConfig is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"InterpreterConfig is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InterpreterConfig):
            return NotImplemented
        return self._args() == other._args()

    def __hash__(self) -> int:
        return hash(self._args())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _CONFIG_FIELDS)
        return f"InterpreterConfig({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_config_from_args, self._args())

    @classmethod
    def isolated(cls) -> InterpreterConfig:
        """Own GIL and allocator, threads allowed; no fork, exec or daemon threads."""
        return cls()

    @classmethod
    def legacy(cls) -> InterpreterConfig:
        """What ``Py_NewInterpreter()`` makes: shared GIL and allocator, everything allowed."""
        return cls(
            use_main_obmalloc=True,
            allow_fork=True,
            allow_exec=True,
            allow_threads=True,
            allow_daemon_threads=True,
            check_multi_interp_extensions=False,
            gil="shared",
        )

    def _args(self) -> tuple[bool, bool, bool, bool, bool, bool, str]:
        return (
            self.use_main_obmalloc,
            self.allow_fork,
            self.allow_exec,
            self.allow_threads,
            self.allow_daemon_threads,
            self.check_multi_interp_extensions,
            self.gil,
        )


class Subinterpreter:
    """A handle to a CPython interpreter; owning when made by :meth:`create`.

    ``exec`` and ``call`` run in the calling OS thread with the caller's GIL released, so
    threads driving different subinterpreters run in parallel. ``close()`` (or leaving the
    ``with`` block) destroys an owned interpreter; :meth:`main` and :meth:`current` give
    non-owning handles, and :meth:`disarm` turns an owner into one (the interpreter leaks).
    """

    __slots__ = ("__weakref__", "_id", "_key", "_owned")

    _id: int
    # The interpreter's id for good: equality and hashing do not change when close() sets
    # `_id` to -1 (CPython never reuses an id).
    _key: int
    _owned: bool

    def __init__(self) -> None:
        raise TypeError("use Subinterpreter.create(), .main() or .current()")

    @classmethod
    def _wrap(cls, id: int, owned: bool) -> Self:
        self = object.__new__(cls)
        self._id = self._key = id
        self._owned = owned
        return self

    @classmethod
    def create(
        cls, config: InterpreterConfig | None = None, *, forward_logging: bool = False
    ) -> Self:
        """Create an interpreter (isolated by default) and return its owning handle.

        With ``forward_logging`` (or inside :func:`subinterp_rs.logs.forward_logging`) its
        logging records and warnings go to the main interpreter's (see
        :mod:`subinterp_rs.logs`).
        """
        forward = forward_logging_wanted(forward_logging)
        if config is None:
            config = InterpreterConfig()
        elif not isinstance(config, InterpreterConfig):
            raise TypeError(f"config must be an InterpreterConfig, got {type(config).__name__}")
        import_in_main_first(legacy=not config.check_multi_interp_extensions)
        setup = setup_for_new_interpreter(isolated=config.check_multi_interp_extensions)
        id = _native_api.create(config, _native_api.WHENCE_CAPI, setup)
        if forward:
            try:
                from . import logs

                logs.attach(id)
            except BaseException:
                _native_api.destroy(id)
                raise
        return cls._wrap(id, True)

    @classmethod
    def main(cls) -> Self:
        """A non-owning handle to the main interpreter."""
        return cls._wrap(_native_api.get_main()[0], False)

    @classmethod
    def current(cls) -> Self:
        """A non-owning handle to the interpreter running this code."""
        return cls._wrap(_native_api.get_current()[0], False)

    @property
    def id(self) -> int:
        """The interpreter's id; ``-1`` once this owning handle closed it."""
        return self._id

    @property
    def owned(self) -> bool:
        """Whether closing this handle destroys the interpreter."""
        return self._owned

    def __bool__(self) -> bool:
        return self._id >= 0

    def __repr__(self) -> str:
        kind = "owned" if self._owned else "non-owning"
        state = "closed" if self._id < 0 else f"id={self._id}"
        return f"<Subinterpreter {state} {kind}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subinterpreter):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __reduce__(self) -> tuple[Callable[[int], Subinterpreter], tuple[int]]:
        # A copy (pickled into another interpreter, or copy.copy) never owns: only the
        # handle create() returned closes the interpreter.
        return (_non_owning, (self._id,))

    def _check_open(self) -> int:
        if self._id < 0:
            raise InterpreterError("the subinterpreter is closed; create a new one")
        return self._id

    def is_running(self) -> bool:
        """Whether it runs code in some thread right now."""
        return _native_api.is_running(self._check_open())

    def exec(self, code: str | CodeType | Callable[[], object], /) -> None:
        """Run source code, a code object, or the body of a function without arguments, in
        the interpreter's ``__main__``.

        Raises :class:`ExecutionFailed` if it raises.
        """
        _native_api.exec(self._check_open(), code)

    def call(self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``callable(*args, **kwargs)`` inside and return the result.

        Values of shareable types cross as data, anything else by pickle (functions of
        ``__main__``, lambdas and closures included). Raises :class:`ExecutionFailed` if it
        raises, :class:`NotShareableError` if an argument or the result cannot cross.
        """
        return _native_api.call(self._check_open(), callable, args, kwargs or None, closures=True)

    def prepare_main(self, ns: dict[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Bind shareable values into the interpreter's ``__main__``."""
        _native_api.set_main_attrs(self._check_open(), dict(ns or {}, **kwargs))

    def close(self) -> None:
        """Destroy the interpreter now.

        Like the end of a program, this first joins, in this thread, the (non-daemon)
        ``threading`` threads the interpreter started, then finalizes it. Raises
        :class:`InterpreterError` for a non-owning or disarmed handle, for the main or the
        current interpreter, and while it runs in another thread.
        """
        id = self._check_open()
        if not self._owned:
            raise InterpreterError(
                f"interpreter {id} is not owned by this handle (main, current or disarmed); "
                "only the handle returned by Subinterpreter.create() can close it"
            )
        logs = sys.modules.get("subinterp_rs.logs")
        if logs is not None:
            logs.before_close(id)
        _native_api.destroy(id)
        self._id = -1
        self._owned = False

    def disarm(self) -> None:
        """Give up ownership on purpose: the interpreter is leaked, never destroyed."""
        id = self._check_open()
        if not self._owned:
            raise InterpreterError(f"interpreter {id} is not owned by this handle")
        _native_api.disarm(id)
        self._owned = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owned and self._id >= 0:
            self.close()

    def __del__(self) -> None:
        # An owning handle that was never closed: the lifecycle owner closes the interpreter
        # now, or as soon as it can (its run ends, the buffers it exported are dropped), or at
        # exit.
        if getattr(self, "_owned", False) and self._id >= 0:
            with contextlib.suppress(Exception):
                _native_api.release_owner(self._id)


def forward_logging_wanted(forward: bool) -> bool:
    """Whether an interpreter being created forwards its logging: asked for, or inside
    ``subinterp_rs.logs.forward_logging()`` (``subinterp_rs.logs`` is only imported when it is
    used: a module more in every interpreter changes what its finalization sees)."""
    if not isinstance(forward, bool):
        raise TypeError(f"forward_logging must be a bool, got {type(forward).__name__}")
    logs = sys.modules.get("subinterp_rs.logs")
    return forward or (logs is not None and logs.wanted(False))


def _config_from_args(*args: Any) -> InterpreterConfig:
    return InterpreterConfig(**dict(zip(_CONFIG_FIELDS, args, strict=True)))


def _non_owning(id: int) -> Subinterpreter:
    """A non-owning handle to interpreter ``id`` (what copies and pickles of handles are)."""
    return Subinterpreter._wrap(id, False)


# The public names: reprs, pickles and docs say `subinterp_rs.X`, where users import them from.
InterpreterConfig.__module__ = Subinterpreter.__module__ = "subinterp_rs"
