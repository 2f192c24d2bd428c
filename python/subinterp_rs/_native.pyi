"""The native module: one pyo3-ffi multi-phase module imported by every interpreter.

Functions only, keyed by integer ids (like CPython's ``_interpreters``/``_interpqueues``); only
``subinterp_rs._native_api`` calls them, by keyword, and the package's classes wrap that. Every
function takes its arguments positionally or by keyword (the names below), and may be called
from any interpreter (main or subinterpreter) and any thread.

Errors: ``InterpreterNotFoundError`` for an unknown id, ``InterpreterError`` for a refused
operation, ``ExecutionFailed`` for an exception raised inside, ``NotShareableError`` for a value
that cannot cross, ``ValueError``/``TypeError`` for bad arguments, ``Queue*`` errors for queues.
"""

from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any, Final

from ._errors import ExcInfo

# CPython's record of who created an interpreter (the stdlib's _interpreters.WHENCE_*).
WHENCE_UNKNOWN: Final[int]
WHENCE_RUNTIME: Final[int]
WHENCE_LEGACY_CAPI: Final[int]
WHENCE_CAPI: Final[int]
WHENCE_XI: Final[int]
WHENCE_STDLIB: Final[int]

# Unbound-item operations of queues (the stdlib's flags).
UNBOUND_REMOVE: Final[int]
UNBOUND_ERROR: Final[int]
UNBOUND_REPLACE: Final[int]

# -- interpreters ---------------------------------------------------------------------------

def create(
    use_main_obmalloc: bool,
    allow_fork: bool,
    allow_exec: bool,
    allow_threads: bool,
    allow_daemon_threads: bool,
    check_multi_interp_extensions: bool,
    gil: str,
    whence: int,
    setup: bytes | None = None,
) -> int:
    """Create an interpreter owned by the process-wide registry; return its id.

    ``setup``: a code object marshalled by this CPython, run in the new interpreter (a
    namespace of its own) before anything else can use it; if it raises, the interpreter is
    closed again and ``InterpreterError`` says why.

    With ``WHENCE_STDLIB`` it starts with one handle reference (see ``incref``), which the
    caller hands over to its handle object and then drops with ``decref``.

    ``gil`` is ``"default"``, ``"shared"`` or ``"own"``; ``whence`` is what ``whence()`` will
    report for it (``WHENCE_STDLIB`` for the PEP 734 facade, ``WHENCE_CAPI`` otherwise).
    Invalid combinations raise ``ValueError`` before CPython sees them.
    """

def destroy(id: int) -> None:
    """Close an interpreter the registry owns.

    ``InterpreterNotFoundError`` if it does not exist, ``InterpreterError`` if it is main, the
    current one, running, has live threads, was disarmed, or is not owned by us.
    """

def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()`` over the calling interpreter's threads only."""

def current_exceptions() -> dict[int, BaseException]:
    """``sys._current_exceptions()`` over the calling interpreter's threads only."""

def list_all() -> list[tuple[int, int]]:
    """``(id, whence)`` of every interpreter in the process, main first, by id."""

def get_current() -> tuple[int, int]:
    """``(id, whence)`` of the calling interpreter."""

def get_main() -> tuple[int, int]:
    """``(id, whence)`` of the main interpreter."""

def whence(id: int) -> int: ...
def is_running(id: int) -> bool:
    """Whether the interpreter runs code (its ``__main__``) in some thread."""

def is_owned(id: int) -> bool:
    """Whether the registry owns it (created here, not disarmed, not closed, and its owner is
    still there: not awaiting a deferred close)."""

def disarm(id: int) -> None:
    """Give up ownership on purpose: the interpreter will never be destroyed (leaked)."""

def incref(id: int) -> None:
    """Take a handle reference (PEP 734 ``Interpreter`` objects that own their interpreter)."""

def decref(id: int) -> None:
    """Drop a handle reference; at zero an interpreter made by the facade is closed, now or
    when it can be (its run ends, the buffers it exported are dropped, the process exits)."""

def release_owner(id: int) -> None:
    """The owning ``Subinterpreter`` handle went without ``close()``: close the interpreter
    now, or when it can be (as for ``decref``)."""

def exec(id: int, code: str | CodeType | Callable[[], object]) -> None:
    """Run source (or a code object) in the interpreter's ``__main__``, in this OS thread, with
    the caller's GIL released. Raises ``ExecutionFailed`` for an uncaught exception."""

def call(
    id: int,
    callable: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any] | None,
    closures: bool = False,
) -> Any:
    """Call ``callable(*args, **kwargs)`` in the interpreter and return the result.

    Shareable values cross as data, importable functions and classes by name, everything
    else by pickle (functions of a script's ``__main__`` included; stateless nested functions
    by value, as in the 3.14 stdlib; with ``closures`` any nested function or closure by
    value). Raises ``ExecutionFailed`` for an uncaught exception, ``NotShareableError`` when
    an argument or the result cannot cross.
    """

def set_main_attrs(id: int, ns: Mapping[str, Any]) -> None:
    """Bind shareable values into the interpreter's ``__main__`` (``NotShareableError`` else)."""

def is_shareable(obj: object) -> bool:
    """Whether ``obj`` crosses without pickle (None, bool, int, float, str, bytes, tuples of
    these, buffers, queues)."""

def excinfo_of(exc: BaseException) -> ExcInfo:
    """The interpreter-neutral description of an exception (as ``ExecutionFailed`` carries)."""

def _register_queue_type(cls: type) -> None:
    """Tell this interpreter's module which class wraps queue ids (the facade's ``Queue``)."""

def executor_create() -> int:
    """A new executor work queue; its id."""

def executor_submit(
    pool: int, task: int, callable: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> tuple[int, int]:
    """Queue ``callable(*args, **kwargs)`` as task ``task``; ``(task, idle workers)``."""

def executor_submit_chunk(
    pool: int, task: int, callable: object, items: tuple[tuple[Any, ...], ...]
) -> tuple[int, int]:
    """Queue ``callable(*args)`` for each ``args`` of ``items`` as one task;
    ``(task, idle workers)``."""

def executor_work(
    pool: int, interp: int, max: int, workers: int
) -> list[tuple[int, int, Any]] | None:
    """Wait (GIL released) for tasks, take this worker's share, run it inside interpreter
    ``interp``: ``[(id, kind, payload)]`` (kind 0 a result, 1 an exception, 2 a chunk's results,
    3 a chunk's ``(results before, exception)``, 4 cancelled before it started); ``None`` once
    the queue is closed and empty."""

def executor_started(pool: int, task: int) -> bool:
    """Whether task ``task`` has started (and not finished)."""

def executor_cancel(pool: int, task: int) -> bool:
    """Cancel task ``task`` if it has not started; whether it was."""

def executor_close(pool: int, cancel: bool, forget: bool) -> list[int]:
    """Close the work queue (``cancel``: drop what is queued, cancel what was taken but not
    started); those task ids."""

def _set_crossing_max_bytes(n: int) -> int:
    """Set the largest encoding a container crossing as data may take (bytes; a negative
    number: as memory allows), over which it raises ``MemoryError``; return the old bound
    (``-1``: as memory allows). For tests."""

def _private_api_missing() -> list[str]:
    """Private CPython entry points this Python lacks (empty on supported versions)."""

def _shutdown() -> list[int]:
    """Close every interpreter we created, disarmed ones too (idle ones at once; running ones
    get ``SystemExit`` raised inside first). Returns the ids still running after a grace
    period. Called at exit by the package in the main interpreter."""

# -- queues ---------------------------------------------------------------------------------

def queue_create(maxsize: int, unboundop: int) -> int:
    """A new queue with one handle reference; ``maxsize <= 0`` means unbounded."""

def queue_bind(qid: int) -> None:
    """Take a handle reference (``QueueNotFoundError`` if gone)."""

def queue_release(qid: int) -> None:
    """Drop a handle reference; at zero the queue and its items are freed."""

def queue_list_all() -> list[tuple[int, int, int]]:
    """``(qid, default unboundop, maxsize)`` of every live queue."""

def queue_put(qid: int, obj: object, unboundop: int, block: bool, timeout: float | None) -> None:
    """Append an item (``unboundop`` -1 = the queue's default). Blocking waits release the GIL
    and honour ``timeout`` in seconds (``QueueFull`` after it, or at once if not ``block``)."""

def queue_get(qid: int, block: bool, timeout: float | None) -> tuple[object, int | None]:
    """Pop the next item: ``(obj, None)``, or ``(None, unboundop)`` for an item whose
    interpreter was closed (``UNBOUND_ERROR`` or ``UNBOUND_REPLACE``; the caller maps it).
    ``QueueEmpty`` when none arrives within ``timeout`` (or at once if not ``block``)."""

def queue_get_maxsize(qid: int) -> int: ...
def queue_get_count(qid: int) -> int: ...
def queue_is_full(qid: int) -> bool: ...
def queue_get_defaults(qid: int) -> tuple[int, int]:
    """``(unboundop, fallback)`` defaults of the queue (fallback is always pickle: 1)."""

def shareddict_open(name: str, maxsize: int) -> tuple[int, int]:
    """Open (or create) the shared dict ``name`` (bounded to ``maxsize`` keys, 0: unbounded,
    applied when it is created); return ``(id, maxsize)``."""

def shareddict_close(id: int) -> None:
    """Close the shared dict for every interpreter (its entries are dropped)."""

def shareddict_is_closed(id: int) -> bool:
    """Whether it is closed."""

def shareddict_get(id: int, key: object) -> tuple[bool, object]:
    """``(found, value)`` of ``key``."""

def shareddict_set(id: int, key: object, value: object) -> None:
    """Set ``key`` to ``value``."""

def shareddict_pop(id: int, key: object) -> tuple[bool, object]:
    """Remove ``key``: ``(found, value)``."""

def shareddict_setdefault(id: int, key: object, value: object) -> object:
    """The value of ``key``, set to ``value`` first if it has none."""

def shareddict_compare_and_set(
    id: int, key: object, expected: object, new: object, absent: bool
) -> bool:
    """Set ``key`` to ``new`` if its value is ``expected`` (or, with ``absent``, if it has
    none); whether it did."""

def shareddict_increment(id: int, key: object, delta: object, default: object) -> object:
    """Add ``delta`` to the number at ``key`` (``default`` if none); return the sum."""

def shareddict_len(id: int) -> int:
    """How many keys."""

def shareddict_items(id: int) -> list[tuple[object, object]]:
    """A snapshot: a list of ``(key, value)``."""

def shareddict_clear(id: int) -> None:
    """Remove every key."""
