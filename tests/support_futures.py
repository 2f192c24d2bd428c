"""Task functions for tests/test_futures.py and tests/test_aio.py.

Not a test module. Its functions cross into worker interpreters by name, so the workers
import this module (pytest puts tests/ on sys.path, and subinterpreters inherit it): it must
import only the standard library and the native module, never pytest or hypothesis.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from subinterp_rs import _native

VALUE: object = None
"""Set by :func:`set_value` (an initializer), read by :func:`get_value`."""

_calls = 0


class TaskError(Exception):
    """An exception class that is importable in every interpreter."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(code, why)
        self.code = code
        self.why = why


class Unpicklable(Exception):
    """An exception that cannot cross back (its pickling fails)."""

    def __reduce__(self) -> Any:
        raise TypeError("Unpicklable cannot be pickled")


def square(x: int) -> int:
    return x * x


def add(x: Any, y: Any) -> Any:
    return x + y


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def describe(x: object) -> tuple[str, object]:
    """``(type name, x)``: the value back, with what it was where the call ran."""
    return type(x).__name__, x


def int_of(text: str) -> int:
    """``int(text)``: raises ``ValueError`` for bad text."""
    return int(text)


def raise_task_error(code: int) -> None:
    raise TaskError(code, f"task {code} failed")


def raise_unpicklable() -> None:
    raise Unpicklable("nope")


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def returns_lock() -> threading.Lock:
    """A result that cannot cross back (neither shareable nor picklable)."""
    return threading.Lock()


def interp_id() -> int:
    """The id of the interpreter this runs in."""
    return _native.get_current()[0]


def interp_and_calls() -> tuple[int, int]:
    """``(interpreter id, calls so far in this interpreter)``: module state per interpreter."""
    global _calls
    _calls += 1
    return _native.get_current()[0], _calls


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def set_value(value: object) -> None:
    global VALUE
    VALUE = value


def get_value() -> object:
    return VALUE


def get_main_attr(name: str) -> object:
    import __main__

    return getattr(__main__, name)


def fail_init(*_: object) -> None:
    raise RuntimeError("initializer failed on purpose")


def set_main_attr(name: str, value: object) -> None:
    import __main__

    setattr(__main__, name, value)


def main_names() -> list[str]:
    """The names bound in this interpreter's ``__main__``."""
    import __main__

    return sorted(vars(__main__))


def sys_path() -> list[str]:
    import sys

    return list(sys.path)


def start_sleeper(seconds: float) -> None:
    """Start a (non-daemon) thread of this interpreter that sleeps ``seconds``."""
    threading.Thread(target=time.sleep, args=(seconds,)).start()
