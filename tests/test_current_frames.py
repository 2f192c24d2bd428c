"""``sys._current_frames()`` and ``sys._current_exceptions()`` while subinterpreters run.

CPython's own walk every interpreter's threads and build frame objects for a running
subinterpreter's frames from the caller's allocator: the process aborts (``free(): invalid
pointer`` on 3.13). The package replaces both, in every interpreter that imports it, with
versions that walk the calling interpreter's threads only.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
from collections.abc import Iterator
from types import FrameType

import pytest
import subinterp_rs
from _helpers import assert_ok
from subinterp_rs import Subinterpreter

pytestmark = pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="not replaced on free-threaded builds",
)


@pytest.fixture
def si() -> Iterator[Subinterpreter]:
    with Subinterpreter.create() as s:
        yield s


def test_calls_while_subinterpreters_run_do_not_crash() -> None:
    # Without the guard this aborts the child within a few thousand calls on 3.13.
    assert_ok(
        """
        import sys, threading
        from subinterp_rs import Subinterpreter
        sis = [Subinterpreter.create() for _ in range(2)]
        def work(si):
            si.exec("def f(n):\\n def g(k):\\n  return k and g(k - 1)\\n"
                    " for i in range(n): g(30)\\n")
            for _ in range(60):
                si.exec("f(2000)")
        threads = [threading.Thread(target=work, args=(s,)) for s in sis]
        for t in threads:
            t.start()
        calls = 0
        while any(t.is_alive() for t in threads):
            frames = sys._current_frames()
            assert threading.get_ident() in frames
            sys._current_exceptions()
            calls += 1
        for t in threads:
            t.join()
        for s in sis:
            s.close()
        assert calls > 0
        print("OK")
        """,
        timeout=300,
    )


def test_replacements_keep_the_names_and_wrap_cpythons() -> None:
    for name in ("_current_frames", "_current_exceptions"):
        fn = getattr(sys, name)
        assert fn.__name__ == name
        assert fn.__module__ == "sys"
        assert fn.__wrapped__ is not fn  # CPython's, for callers that want it anyway
        assert fn.__doc__ == fn.__wrapped__.__doc__


def test_frames_of_this_interpreters_threads(si: Subinterpreter) -> None:
    waiting = threading.Event()
    release = threading.Event()
    entered = threading.Event()

    def main_waiter() -> None:
        waiting.set()
        release.wait(60)

    def calls_in() -> None:
        entered.set()
        si.exec("import time\nfor _ in range(200):\n    time.sleep(0.01)\n")

    # Threads of main that the threading module does not list (pytest-xdist's worker has one).
    unlisted = set(sys._current_frames()) - {t.ident for t in threading.enumerate()}
    waiter = threading.Thread(target=main_waiter)
    caller = threading.Thread(target=calls_in)
    waiter.start()
    caller.start()
    try:
        assert waiting.wait(30) and entered.wait(30)
        frames = sys._current_frames()
        here = frames[threading.get_ident()]
        assert isinstance(here, FrameType)
        assert here.f_code is test_frames_of_this_interpreters_threads.__code__
        # What CPython's gives for main-interpreter threads: the innermost frame.
        assert waiter.ident in frames
        assert "main_waiter" in _codes_up(frames[waiter.ident])
        # A thread inside the subinterpreter: the main frame it entered from.
        assert caller.ident in frames
        assert "calls_in" in _codes_up(frames[caller.ident])
        # Only this interpreter's threads: every key is a thread main knows (or had already).
        known = {t.ident for t in threading.enumerate()}
        assert set(frames) <= known | unlisted
    finally:
        release.set()
        waiter.join(30)
        caller.join(60)


def _codes_up(frame: FrameType | None) -> list[str]:
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


def test_exceptions_being_handled_in_other_threads() -> None:
    handling = threading.Event()
    release = threading.Event()
    err = KeyError("handled here")

    def handler() -> None:
        try:
            raise err
        except KeyError:
            handling.set()
            release.wait(60)

    t = threading.Thread(target=handler)
    t.start()
    try:
        assert handling.wait(30)
        current = sys._current_exceptions()
        assert current[t.ident] is err  # type: ignore[index]
        assert threading.get_ident() not in current  # nothing handled here
        try:
            raise ValueError("mine")
        except ValueError as mine:
            assert sys._current_exceptions()[threading.get_ident()] is mine
    finally:
        release.set()
        t.join(30)


def test_inside_a_subinterpreter_only_its_threads(si: Subinterpreter) -> None:
    si.exec("import subinterp_rs")  # the package's guards install on import
    got = si.call(_frames_and_exceptions_here)
    n_frames, idents_match, names = got
    assert n_frames == 1
    assert idents_match
    assert names == ["_current_frames", "_current_exceptions"]


def _frames_and_exceptions_here() -> tuple[int, bool, list[str]]:
    import sys
    import threading

    frames = sys._current_frames()
    return (
        len(frames),
        list(frames) == [threading.get_ident()],
        [sys._current_frames.__name__, sys._current_exceptions.__name__],
    )


def test_package_import_installs_in_every_interpreter() -> None:
    assert subinterp_rs is not None
    assert_ok(
        """
        import sys
        original = sys._current_frames
        import subinterp_rs
        assert sys._current_frames is not original
        assert sys._current_frames.__wrapped__ is original
        import subinterp_rs._process_guards as g
        g._install_frames_guard()  # idempotent: never wraps twice
        assert sys._current_frames.__wrapped__ is original
        print("OK")
        """
    )
