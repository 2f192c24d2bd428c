"""What :mod:`subinterp_rs.logs` installs inside an interpreter that forwards its logging.

Imported by name inside (on :func:`install`); imports only the standard library and
``_native_api`` (for the native queue). A handler on the root logger turns each record into a
tuple of plain data (it crosses without pickle) and puts it into the forwarding queue without
waiting; ``warnings.showwarning`` does the same for warnings. When the queue is full the item
is dropped and counted; the count goes with the next item that fits, or is taken by
:func:`take_dropped` before the interpreter closes.
"""

from __future__ import annotations

import importlib
import logging
import threading
import warnings
from typing import Any

from . import _native_api
from ._errors import QueueFull

__all__ = ["install", "take_dropped"]

_state: _Sink | None = None

LOG = "log"
WARN = "warn"


class _Sink:
    def __init__(self, qid: int, interp_id: int) -> None:
        self.qid = qid
        self.interp_id = interp_id
        self.dropped = 0
        self.lock = threading.Lock()

    def send(self, kind: str, fields: tuple[Any, ...]) -> None:
        with self.lock:
            item = (kind, self.interp_id, self.dropped, *fields)
            try:
                _native_api.queue_put(self.qid, item, _native_api.UNBOUND_REPLACE, False, None)
            except QueueFull:
                self.dropped += 1
            else:
                self.dropped = 0


class _ForwardingHandler(logging.Handler):
    """Puts every record it gets into the forwarding queue (never waits)."""

    def __init__(self, sink: _Sink) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_text = record.exc_text
            if record.exc_info and not exc_text:
                exc_text = self._formatter.formatException(record.exc_info)
            self.sink.send(
                LOG,
                (
                    record.name,
                    record.levelno,
                    record.levelname,
                    record.getMessage(),
                    exc_text or None,
                    record.stack_info or None,
                    record.pathname,
                    record.lineno,
                    record.funcName,
                    record.created,
                    record.msecs,
                    record.thread,
                    record.threadName,
                    getattr(record, "taskName", None),
                ),
            )
        except Exception:
            self.handleError(record)


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    sink = _state
    if sink is None:
        return
    sink.send(
        WARN,
        (str(message), category.__module__, category.__qualname__, filename, lineno),
    )


Filter = tuple[str, str, str, str, str, int]
"""A warnings filter as data: action, message regex, category module and qualname, module
regex, line."""


def install(
    qid: int,
    interp_id: int,
    levels: tuple[tuple[str, int], ...],
    filters: tuple[Filter, ...],
) -> None:
    """Forward this interpreter's logging and warnings into queue ``qid`` (once). ``levels``:
    ``(logger name, level)`` of the loggers main set a level on (``""`` for the root), so the
    same records pass here as would there; ``filters``: main's warnings filters, which replace
    this interpreter's (a category that cannot be imported here is left out)."""
    global _state
    if _state is not None:
        return
    sink = _state = _Sink(qid, interp_id)
    for name, level in levels:
        (logging.getLogger(name) if name else logging.getLogger()).setLevel(level)
    logging.getLogger().addHandler(_ForwardingHandler(sink))
    warnings.resetwarnings()
    for action, message, cat_module, cat_qualname, module, lineno in filters:
        try:
            category: Any = importlib.import_module(cat_module)
            for part in cat_qualname.split("."):
                category = getattr(category, part)
        except Exception:
            continue
        warnings.filterwarnings(
            action,  # type: ignore[arg-type]
            message,
            category,
            module,
            lineno,
            append=True,
        )
    warnings.showwarning = _showwarning


def take_dropped() -> int:
    """Items dropped since the last one that fit (and forget them): called before close."""
    sink = _state
    if sink is None:
        return 0
    with sink.lock:
        n, sink.dropped = sink.dropped, 0
    return n
