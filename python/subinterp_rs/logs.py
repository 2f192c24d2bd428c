"""Logging and warnings of subinterpreters, delivered to the main interpreter's.

Inside a subinterpreter ``logging`` and ``warnings`` are the interpreter's own: records go to
its root logger, which has no handler, and warnings to its ``sys.stderr``. With forwarding on
(``forward_logging=True`` on :class:`~subinterp_rs.futures.InterpreterPoolExecutor`,
:class:`~subinterp_rs.aio.AsyncInterpreterPool` or :meth:`Subinterpreter.create
<subinterp_rs.Subinterpreter.create>`, or every interpreter the package creates inside a
``with forward_logging():`` block) a handler inside each interpreter sends its records to main
through one bounded native queue, and a thread of main hands them to the logger of the same
name, so the handlers and formatters configured in main see them as if logged there
(``record.interpreter_id`` says where they came from). Warnings go to main's
``warnings.warn_explicit``, so main's filters apply.

* The loggers main set a level on get the same level inside (at the time forwarding starts),
  so the records main would drop are not sent.
* Nothing waits: when the queue is full (``bound`` items) a record is dropped and counted;
  main logs a warning with the count (logger ``subinterp_rs.logs``) and :func:`dropped`
  gives the total.
* Before an interpreter that forwards is closed, what it sent is handed to main's logging:
  records logged just before the close are not lost.

Example::

    import logging
    from subinterp_rs.futures import InterpreterPoolExecutor

    logging.basicConfig(level=logging.INFO)
    with InterpreterPoolExecutor(forward_logging=True) as pool:
        pool.submit(logging.info, "from a worker").result()
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any, Final

from . import _logsink, _native_api
from ._errors import InterpreterError, QueueEmpty

__all__ = ["DEFAULT_BOUND", "dropped", "forward_logging"]

DEFAULT_BOUND: Final = 10_000
"""Records and warnings the forwarding queue holds before it drops new ones."""

_LOGGER = logging.getLogger("subinterp_rs.logs")
_FLUSH = "flush"


class _Forwarder:
    """The queue every forwarding interpreter puts into, and main's thread that drains it."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.qid = _native_api.queue_create(bound, _native_api.UNBOUND_REPLACE)
        self.attached: set[int] = set()
        self.dropped = 0
        self.dropped_lock = threading.Lock()
        self.flushes: dict[int, threading.Event] = {}
        self.tokens = itertools.count()
        self.thread = threading.Thread(target=self._run, name="subinterp_rs.logs", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # The one thread that delivers: records keep their order.
        while True:
            try:
                item, unbound = _native_api.queue_get(self.qid, True, None)
            except QueueEmpty:
                continue
            except Exception:
                return  # the process is exiting (the exit hook woke the queue)
            if unbound is None and isinstance(item, tuple):
                self.deliver(item)

    def flush(self) -> None:
        """Wait until everything put into the queue before this call is delivered."""
        if threading.current_thread() is self.thread:
            return  # a handler closing an interpreter: what it sent comes after
        token = next(self.tokens)
        done = self.flushes[token] = threading.Event()
        try:
            _native_api.queue_put(self.qid, (_FLUSH, token), _native_api.UNBOUND_REPLACE, True, 10)
            done.wait(10)
        finally:
            self.flushes.pop(token, None)

    def deliver(self, item: tuple[Any, ...]) -> None:
        if item[0] == _FLUSH:
            done = self.flushes.get(item[1])
            if done is not None:
                done.set()
            return
        kind, interp_id, dropped_before = item[:3]
        if dropped_before:
            self.report_dropped(interp_id, dropped_before)
        try:
            if kind == _logsink.LOG:
                self.log(interp_id, item[3:])
            elif kind == _logsink.WARN:
                self.warn(item[3:])
        except Exception:
            _LOGGER.exception("could not deliver a record of interpreter %d", interp_id)

    def report_dropped(self, interp_id: int, n: int) -> None:
        with self.dropped_lock:
            self.dropped += n
        _LOGGER.warning(
            "%d log records or warnings of interpreter %d were dropped: the forwarding queue "
            "was full (%d items)",
            n,
            interp_id,
            self.bound,
        )

    @staticmethod
    def log(interp_id: int, fields: tuple[Any, ...]) -> None:
        (
            name,
            levelno,
            levelname,
            message,
            exc_text,
            stack_info,
            pathname,
            lineno,
            func_name,
            created,
            msecs,
            thread,
            thread_name,
            task_name,
        ) = fields
        logger = logging.getLogger(name) if name != "root" else logging.getLogger()
        if not logger.isEnabledFor(levelno):
            return
        record = logger.makeRecord(
            name, levelno, pathname, lineno, message, (), None, func_name, None, stack_info
        )
        record.levelname = levelname
        record.exc_text = exc_text
        record.created = created
        record.msecs = msecs
        start: float = getattr(logging, "_startTime", created)
        record.relativeCreated = (created - start) * 1000
        record.thread = thread
        # Inside, a thread the interpreter did not start is its "MainThread" or a dummy:
        # the name main knows the thread by says more.
        record.threadName = _thread_names().get(thread, thread_name)
        record.taskName = task_name
        record.interpreter_id = interp_id
        logger.handle(record)

    @staticmethod
    def warn(fields: tuple[Any, ...]) -> None:
        # Main's filters were applied inside (a copy of them): show it, as main would.
        message, module, qualname, filename, lineno = fields
        category: type[Warning] = UserWarning
        with contextlib.suppress(Exception):
            found: Any = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
            if isinstance(found, type) and issubclass(found, Warning):
                category = found
        warnings.showwarning(category(message), category, filename, lineno)

    def attach(self, interp_id: int) -> None:
        args = (self.qid, interp_id, tuple(_levels()), tuple(_filters()))
        _native_api.call(interp_id, _logsink.install, args, None)
        self.attached.add(interp_id)

    def before_close(self, interp_id: int) -> None:
        """Deliver what ``interp_id`` sent (it is idle: nothing more comes from it)."""
        try:
            n = _native_api.call(interp_id, _logsink.take_dropped, (), None)
        except InterpreterError:
            n = 0
        self.attached.discard(interp_id)
        self.flush()
        if isinstance(n, int) and n:
            self.report_dropped(interp_id, n)


def _filters() -> Iterator[_logsink.Filter]:
    """Main's warnings filters as data (a category of ``__main__`` is left out)."""
    for action, message, category, module, lineno in warnings.filters:
        if not isinstance(category, type) or category.__module__ in ("__main__", "__mp_main__"):
            continue
        yield (
            action,
            _pattern(message),
            category.__module__,
            category.__qualname__,
            _pattern(module),
            lineno,
        )


def _thread_names() -> dict[int | None, str]:
    return {t.ident: t.name for t in threading.enumerate()}


def _pattern(regex: Any) -> str:
    """A filter's message or module: a compiled regex, a string (newer Pythons), or ``None``."""
    if regex is None:
        return ""
    return str(getattr(regex, "pattern", regex))


def _levels() -> Iterator[tuple[str, int]]:
    root = logging.getLogger()
    yield ("", root.level)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            yield (name, logger.level)


_forwarder: _Forwarder | None = None
_forwarder_lock = threading.Lock()
_active = 0
_active_bound = DEFAULT_BOUND


def _get_forwarder(bound: int) -> _Forwarder:
    global _forwarder
    with _forwarder_lock:
        if _forwarder is None:
            _forwarder = _Forwarder(bound)
        return _forwarder


@contextlib.contextmanager
def forward_logging(*, bound: int = DEFAULT_BOUND) -> Iterator[None]:
    """Within the block, every interpreter the package creates (directly, by an executor or
    an asyncio pool) forwards its logging and warnings to main. ``bound``: how many items
    the forwarding queue holds (applies when the first forwarding starts; the queue is then
    kept for the process)."""
    global _active, _active_bound
    _check_bound(bound)
    with _forwarder_lock:
        _active += 1
        _active_bound = bound
    try:
        yield
    finally:
        with _forwarder_lock:
            _active -= 1


def _check_bound(bound: int) -> None:
    if not isinstance(bound, int) or isinstance(bound, bool):
        raise TypeError(f"bound must be an int, got {type(bound).__name__}")
    if bound < 1:
        raise ValueError(f"bound must be at least 1, got {bound}")


def dropped() -> int:
    """How many records and warnings were dropped so far because the queue was full (those
    main has heard of: an interpreter's count arrives with its next item, or at its close)."""
    fwd = _forwarder
    return 0 if fwd is None else fwd.dropped


def wanted(forward: bool) -> bool:
    """Whether an interpreter being created should forward (asked for, or in the block)."""
    if not isinstance(forward, bool):
        raise TypeError(f"forward_logging must be a bool, got {type(forward).__name__}")
    return forward or _active > 0


def attach(interp_id: int) -> None:
    """Start forwarding interpreter ``interp_id``'s logging and warnings (package-internal)."""
    _get_forwarder(_active_bound).attach(interp_id)


def before_close(interp_id: int) -> None:
    """Called before interpreter ``interp_id`` closes (package-internal): deliver what it
    sent."""
    fwd = _forwarder
    if fwd is not None and interp_id in fwd.attached:
        fwd.before_close(interp_id)
