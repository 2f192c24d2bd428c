"""Misuse matrix: every way of holding the API wrong must end in a clear Python exception.

Complements tests/test_lowlevel.py (which has the basic misuse cases) with what it does not
cover: closing twice and using after close through every API, closing while threads or thread
states are alive, concurrent runs, arguments that cannot cross, exceptions and resource limits
inside, unbound queue items, legacy interpreters, fork and exec, handles that travel between
interpreters, and handles in reference cycles.

Each case runs in a fresh process (``_helpers.assert_ok``): a crash, an abort or a hang fails
that case instead of the run, and the process must exit 0 with no ``Fatal Python error``.
"""

from __future__ import annotations

import pytest
from _helpers import assert_ok, run_snippet

# -- close twice, use after close -----------------------------------------------------------


def test_close_twice_through_every_api() -> None:
    assert_ok(
        """
        from subinterp_rs import (
            InterpreterError, InterpreterNotFoundError, Subinterpreter, _native, interpreters,
        )

        # The PEP 734 facade: the second close() says the interpreter is gone.
        interp = interpreters.create()
        interp.close()
        try:
            interp.close()
        except InterpreterNotFoundError:
            pass
        else:
            raise AssertionError("second facade close() did not raise")

        # The native functions.
        id_ = _native.create(False, False, False, True, False, True, "own", _native.WHENCE_CAPI)
        _native.destroy(id_)
        try:
            _native.destroy(id_)
        except InterpreterNotFoundError as e:
            assert str(id_) in str(e), e
        else:
            raise AssertionError("second destroy() did not raise")

        # A with-block around a handle closed inside it leaves quietly.
        with Subinterpreter.create() as s:
            s.close()
        assert not s

        # A low-level handle whose interpreter was destroyed behind its back.
        s = Subinterpreter.create()
        _native.destroy(s.id)
        try:
            s.close()
        except InterpreterNotFoundError:
            pass
        else:
            raise AssertionError("close() of a destroyed interpreter did not raise")

        # Each API closes only its own interpreters.
        low = Subinterpreter.create()
        try:
            interpreters.Interpreter(low.id).close()
        except InterpreterError as e:
            assert "unrecognized" in str(e), e
        else:
            raise AssertionError("the facade closed a low-level interpreter")
        low.close()
        assert [i for i, _ in _native.list_all()] == [0], _native.list_all()
        print("OK")
        """
    )


def test_close_from_two_threads_at_once() -> None:
    assert_ok(
        """
        import threading
        from subinterp_rs import InterpreterError, Subinterpreter, _native, interpreters

        for round in range(30):
            for kind in ("low", "facade"):
                if kind == "low":
                    s = Subinterpreter.create()
                    close, id_ = s.close, s.id
                else:
                    i = interpreters.create()
                    close, id_ = i.close, i.id
                barrier = threading.Barrier(2)
                outcomes = []

                def closer():
                    barrier.wait()
                    try:
                        close()
                        outcomes.append("closed")
                    except InterpreterError as e:  # NotFound, being closed, closed
                        outcomes.append(type(e).__name__)

                threads = [threading.Thread(target=closer) for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert outcomes.count("closed") == 1, (kind, outcomes)
                assert id_ not in [i for i, _ in _native.list_all()]
        print("OK")
        """
    )


def test_facade_use_after_close() -> None:
    assert_ok(
        """
        from subinterp_rs import interpreters, InterpreterNotFoundError

        interp = interpreters.create()
        interp.close()
        for name, op in [
            ("exec", lambda: interp.exec("pass")),
            ("call", lambda: interp.call(abs, -1)),
            ("prepare_main", lambda: interp.prepare_main(x=1)),
            ("is_running", interp.is_running),
            ("close", interp.close),
        ]:
            try:
                op()
            except InterpreterNotFoundError:
                pass
            else:
                raise AssertionError(f"{name} after close did not raise")
        # call_in_thread: the thread's call fails, the caller is not hurt.
        t = interp.call_in_thread(abs, -1)
        t.join()
        assert interp.whence == "_interpreters module"
        print("OK")
        """
    )


def test_queue_use_after_release() -> None:
    assert_ok(
        """
        import gc
        from subinterp_rs import interpreters, _native, QueueNotFoundError

        q = interpreters.create_queue()
        q.put("x")
        _native.queue_release(q.id)  # the only handle reference, behind the object's back
        for name, op in [
            ("put", lambda: q.put(1)),
            ("put_nowait", lambda: q.put_nowait(1)),
            ("get", lambda: q.get(timeout=0.1)),
            ("get_nowait", q.get_nowait),
            ("qsize", q.qsize),
            ("empty", q.empty),
            ("full", q.full),
        ]:
            try:
                op()
            except QueueNotFoundError:
                pass
            else:
                raise AssertionError(f"{name} on a released queue did not raise")
        try:
            interpreters.Queue(q.id + 1000)
        except QueueNotFoundError:
            pass
        else:
            raise AssertionError("Queue(unknown id) did not raise")
        del q
        gc.collect()  # __del__ releases again: QueueNotFoundError is swallowed there
        assert _native.queue_list_all() == [], _native.queue_list_all()

        # A queue outlives the interpreter that created it while others hold handles.
        holder = interpreters.create()
        holder.exec("from subinterp_rs import interpreters\\nq = interpreters.create_queue()")
        holder.exec("q.put('kept')")
        (qid,) = [qid for qid, _, _ in _native.queue_list_all()]
        mine = interpreters.Queue(qid)
        mine.put("from main")
        holder.close()
        assert mine.get_nowait() is interpreters.UNBOUND  # its putter is gone
        assert mine.get_nowait() == "from main"
        print("OK")
        """
    )


# -- close while threads or thread states are alive -----------------------------------------


def test_close_waits_for_a_thread_blocked_in_queue_get() -> None:
    # close() joins non-daemon threads (as the stdlib does): one blocked in Queue.get() is
    # released by a put() from main, then close() completes.
    assert_ok(
        """
        import threading, time
        from subinterp_rs import Subinterpreter, interpreters

        q, done = interpreters.create_queue(), interpreters.create_queue()
        s = Subinterpreter.create()
        s.prepare_main(q=q, done=done)
        s.exec(
            "import threading\\n"
            "def worker():\\n"
            "    done.put(('got', q.get()))\\n"
            "t = threading.Thread(target=worker)\\n"
            "t.start()\\n"
        )
        closed = threading.Event()
        closer = threading.Thread(target=lambda: (s.close(), closed.set()))
        closer.start()
        time.sleep(0.3)
        assert not closed.is_set(), "close() did not wait for the thread"
        q.put("wake up")
        closer.join(30)
        assert closed.is_set(), "close() did not finish after the thread ended"
        assert done.get(timeout=5) == ("got", "wake up")
        print("OK")
        """
    )


def test_close_right_after_many_threads_finish() -> None:
    # Threads that just ended may not have deleted their thread states yet: close() must
    # wait for that instead of letting Py_EndInterpreter abort.
    assert_ok(
        """
        from subinterp_rs import InterpreterConfig, Subinterpreter

        for cfg in (InterpreterConfig(), InterpreterConfig(allow_daemon_threads=True),
                    InterpreterConfig.legacy()):
            for _ in range(10):
                s = Subinterpreter.create(cfg)
                s.exec(
                    "import threading\\n"
                    "ts = [threading.Thread(target=sum, args=((1, 2),)) for _ in range(8)]\\n"
                    "for t in ts: t.start()\\n"
                    "for t in ts: t.join()\\n"
                )
                s.close()
        print("OK")
        """
    )


def test_close_while_its_thread_runs_in_another_interpreter() -> None:
    # A thread of A is inside B: B is running (close refused), and closing A waits for the
    # thread (non-daemon) to come back from B.
    assert_ok(
        """
        import threading, time
        from subinterp_rs import InterpreterError, Subinterpreter, _native

        a, b = Subinterpreter.create(), Subinterpreter.create()
        a.prepare_main(b_id=b.id)
        a.exec(
            "import threading\\n"
            "from subinterp_rs import _native\\n"
            "def visit():\\n"
            "    _native.exec(b_id, 'import time; time.sleep(0.5)')\\n"
            "t = threading.Thread(target=visit)\\n"
            "t.start()\\n"
        )
        deadline = time.monotonic() + 10
        while not b.is_running():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        try:
            b.close()
        except InterpreterError as e:
            assert "running" in str(e), e
        else:
            raise AssertionError("closed an interpreter a thread is running in")
        a.close()  # joins the thread, which leaves b first
        assert not b.is_running()
        b.close()
        assert [i for i, _ in _native.list_all()] == [0]
        print("OK")
        """
    )


def test_close_while_other_threads_keep_cached_thread_states() -> None:
    # Threads that ran code in the interpreter keep an idle thread state for it (cached for
    # their next call). Closing it from main while they are alive deletes those states; their
    # next call gets a clean error.
    assert_ok(
        """
        import threading
        from subinterp_rs import InterpreterNotFoundError, Subinterpreter, _native

        s = Subinterpreter.create()
        id_ = s.id
        used, closed = threading.Barrier(9), threading.Event()
        errors = []

        one_at_a_time = threading.Lock()

        def worker(i):
            with one_at_a_time:
                _native.exec(id_, f"x{i} = {i}")
            used.wait()
            closed.wait()
            try:
                _native.exec(id_, "pass")
            except InterpreterNotFoundError:
                errors.append(i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        used.wait()
        s.exec("assert sum(globals()[f'x{i}'] for i in range(8)) == 28")
        s.close()
        closed.set()
        for t in threads:
            t.join()
        assert sorted(errors) == list(range(8)), errors
        print("OK")
        """
    )


# -- concurrent runs ------------------------------------------------------------------------


def test_exec_from_two_threads_at_once() -> None:
    # One interpreter runs in one thread at a time: the other caller gets InterpreterError
    # ('running'), never a crash and never a silent second run.
    assert_ok(
        """
        import threading
        from subinterp_rs import InterpreterError, Subinterpreter, interpreters

        def race(first, second):
            barrier = threading.Barrier(2)
            outcomes = []

            def run(op):
                barrier.wait()
                try:
                    op()
                    outcomes.append("ran")
                except InterpreterError as e:
                    assert "running" in str(e), e
                    outcomes.append("running")

            ts = [threading.Thread(target=run, args=(op,)) for op in (first, second)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return sorted(outcomes)

        slow = "import time; time.sleep(0.2)"
        s = Subinterpreter.create()
        f = interpreters.create()
        seen = set()
        for _ in range(5):
            seen.add(tuple(race(lambda: s.exec(slow), lambda: s.exec(slow))))
            seen.add(tuple(race(lambda: s.exec(slow), lambda: s.call(abs, -1))))
            seen.add(tuple(race(lambda: f.exec(slow), lambda: f.prepare_main(x=1))))
            seen.add(tuple(race(lambda: f.exec(slow), lambda: f.call(abs, -1))))
        assert seen <= {("ran", "running"), ("ran", "ran")}, seen
        assert ("ran", "running") in seen, seen
        s.exec("x = 1")  # still fine afterwards
        f.exec("x = 1")
        s.close()
        f.close()
        print("OK")
        """
    )


# -- arguments that cannot cross ------------------------------------------------------------


def test_call_with_unshareable_and_unpicklable_arguments() -> None:
    assert_ok(
        """
        import threading
        from subinterp_rs import NotShareableError, Subinterpreter, interpreters

        def gen():
            yield 1

        cases = {
            "generator": gen(),
            "lock in a tuple": (1, threading.Lock()),
            "nested lambda with a cell": (lambda k=threading.Lock(): k),
            "frame": __import__("sys")._getframe(),
            "file": open(__import__("os").devnull),
        }
        s = Subinterpreter.create()
        f = interpreters.create()
        for name, value in cases.items():
            for target in (s, f):
                try:
                    target.call(id, value)
                except NotShareableError as e:
                    assert "argument 1" in str(e), (name, e)
                else:
                    raise AssertionError(f"{name} crossed")
                try:
                    target.call(id, key=value)
                except NotShareableError as e:
                    assert "key" in str(e), (name, e)
                else:
                    raise AssertionError(f"{name} crossed as a keyword")
        # Not shareable for prepare_main (no pickle there), even if picklable.
        for value in ([1], {"a": 1}, bytearray(b"x")):
            try:
                f.prepare_main(v=value)
            except NotShareableError:
                pass
            else:
                raise AssertionError(f"prepare_main took {value!r}")
        # A result that cannot come back, and one whose class exists only there.
        def only_here():
            return OnlyHere()  # the class of the interpreter's __main__

        for target in (s, f):
            try:
                target.call(threading.Lock)
            except NotShareableError as e:
                assert "result" in str(e), e
            else:
                raise AssertionError("a lock came back")
            target.exec("class OnlyHere: pass")
            try:
                target.call(only_here)
            except NotShareableError as e:
                assert "rebuilt" in str(e), e
            else:
                raise AssertionError("an instance of a class that exists only there came back")
        s.close()
        f.close()
        print("OK")
        """
    )


def test_call_with_huge_arguments_and_results() -> None:
    # 200 MB each way: copied, not shared; no crash, no truncation.
    assert_ok(
        """
        from subinterp_rs import Subinterpreter, interpreters

        big = bytes(200 * 2**20)
        s = Subinterpreter.create()
        assert s.call(len, big) == len(big)
        assert s.call(len, (big, "x")) == 2
        back = s.call(bytes, 200 * 2**20)
        assert len(back) == 200 * 2**20 and back == big
        del back
        f = interpreters.create()
        q = interpreters.create_queue()
        f.prepare_main(q=q, big=big)
        f.exec("q.put(big[:100 * 2**20] + b'end')")
        item = q.get(timeout=30)
        assert len(item) == 100 * 2**20 + 3 and item.endswith(b"end")
        # A huge int and a huge str cross as data too.
        n = 7 ** 100_000
        assert s.call(abs, -n) == n
        text = "é" * (50 * 2**20)
        assert s.call(len, text) == len(text)
        s.close()
        f.close()
        print("OK")
        """,
        timeout=300,
    )


def test_deeply_nested_arguments() -> None:
    assert_ok(
        """
        from subinterp_rs import NotShareableError, Subinterpreter

        s = Subinterpreter.create()
        shallow = ()
        for _ in range(150):
            shallow = (shallow,)
        assert s.call(len, shallow) == 1  # crosses as data
        deep = ()
        for _ in range(100_000):
            deep = (deep,)
        try:
            s.call(len, deep)  # too deep to share, too deep to pickle
        except NotShareableError:
            pass
        deep_list = []
        for _ in range(100_000):
            deep_list = [deep_list]
        try:
            s.call(len, deep_list)
        except NotShareableError:
            pass
        # The same from inside: a result too deep to come back.
        def too_deep():
            d = []
            for _ in range(100_000):
                d = [d]
            return d

        try:
            s.call(too_deep)
        except NotShareableError as e:
            assert "result" in str(e), e
        else:
            raise AssertionError("a 100000-deep list came back")
        assert s.call(abs, -1) == 1
        s.close()
        print("OK")
        """
    )


def test_keyboard_interrupt_while_pickling_an_argument_propagates() -> None:
    # Was turned into NotShareableError (fixed in de4adcf): Ctrl-C must stay Ctrl-C.
    assert_ok(
        """
        from subinterp_rs import Subinterpreter

        class Interrupted:
            def __reduce__(self):
                raise KeyboardInterrupt("Ctrl-C while pickling")

        s = Subinterpreter.create()
        try:
            s.call(id, Interrupted())
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("KeyboardInterrupt was swallowed")
        s.close()
        print("OK")
        """
    )


def test_first_pickling_in_a_subinterpreter() -> None:
    # CPython < 3.12.4 (python/cpython#119213) keeps the keyword tuple of an extension's
    # argument parser in the allocator of the interpreter that used it first: if that was a
    # subinterpreter (our pickling fallback inside, first thing in the process), the process
    # aborted at exit ('free(): invalid pointer'). Nothing is pickled in main here.
    assert_ok(
        """
        from subinterp_rs import Subinterpreter, interpreters

        s = Subinterpreter.create()
        assert s.call(list, (1, 2)) == [1, 2]  # the result is pickled inside
        q = interpreters.create_queue()
        s.prepare_main(q=q)
        s.exec("q.put([3])")
        s.close()
        print("OK")
        """
    )


def test_base_exceptions_while_crossing_inside() -> None:
    # Raised while an argument is rebuilt inside, or while the result is pickled inside: the
    # caller gets NotShareableError (from an ExecutionFailed describing it, for an argument,
    # as the stdlib's "args not shareable") and the interpreter stays usable.
    assert_ok(
        """
        from subinterp_rs import ExecutionFailed, NotShareableError, Subinterpreter

        def explode(kind):
            raise {"exit": SystemExit, "kbd": KeyboardInterrupt, "mem": MemoryError,
                   "gen": GeneratorExit}[kind]("while rebuilding")

        class Bomb:
            def __init__(self, kind):
                self.kind = kind
            def __reduce__(self):
                return (explode, (self.kind,))

        class Stop(BaseException):
            pass

        s = Subinterpreter.create()
        for kind, name in [("exit", "SystemExit"), ("kbd", "KeyboardInterrupt"),
                           ("mem", "MemoryError"), ("gen", "GeneratorExit")]:
            try:
                s.call(id, Bomb(kind))
            except NotShareableError as e:
                assert isinstance(e.__cause__, ExecutionFailed), repr(e.__cause__)
                assert e.__cause__.excinfo.type.__name__ == name, e.__cause__.excinfo
            else:
                raise AssertionError(kind)
            assert s.call(abs, -2) == 2
        s.exec("class Stop(BaseException): pass")
        try:
            s.exec("raise Stop('custom')")
        except ExecutionFailed as e:
            assert e.excinfo.type.__name__ == "Stop" and e.excinfo.msg == "custom"
        s.exec(
            "class BadResult:\\n"
            "    def __reduce__(self):\\n"
            "        raise SystemExit('no way back')\\n"
        )
        def bad_result():
            return BadResult()  # the class of the interpreter's __main__

        try:
            s.call(bad_result)
        except NotShareableError as e:
            assert "SystemExit" in str(e), e
        else:
            raise AssertionError("an unpicklable result came back")
        assert s.call(abs, -1) == 1
        # Exceptions that cannot even describe themselves.
        for body in [
            "class E(Exception):\\n def __str__(self): raise RuntimeError('nested')\\nraise E()",
            "class E(Exception):\\n def __str__(self): return 5\\nraise E()",
            "class E(Exception):\\n def __str__(self): raise SystemExit(4)\\nraise E()",
            "class E(Exception):\\n def __str__(self): return str(self)\\nraise E()",
            "class E(Exception): pass\\nE.__module__ = 42\\nraise E('m')",
            "raise BaseExceptionGroup('g', [ValueError(1), KeyboardInterrupt()])",
            "e = None\\nfor i in range(3000):\\n try:\\n  raise ValueError(i) from e\\n"
            " except ValueError as x:\\n  e = x\\nraise e",
        ]:
            try:
                s.exec(body)
            except ExecutionFailed as e:
                assert e.excinfo.type.__name__ in ("E", "ExceptionGroup", "BaseExceptionGroup",
                                                   "ValueError"), e.excinfo
                str(e)
            else:
                raise AssertionError(body)
            assert s.call(abs, -3) == 3
        s.close()
        print("OK")
        """
    )


def test_recursion_limit_and_memory_errors_inside() -> None:
    assert_ok(
        """
        import sys
        from subinterp_rs import ExecutionFailed, Subinterpreter

        s = Subinterpreter.create()
        # A tiny recursion limit inside: recursion there fails cleanly, and works again once
        # the limit is back.
        s.exec(
            "import sys\\n"
            "def depth(n):\\n"
            "    return 0 if n == 0 else 1 + depth(n - 1)\\n"
            "old = sys.getrecursionlimit()\\n"
            "sys.setrecursionlimit(40)\\n"
        )
        try:
            s.exec("r = depth(100)")
        except ExecutionFailed as e:
            assert e.excinfo.type.__name__ == "RecursionError", e.excinfo
        else:
            raise AssertionError("no RecursionError")
        s.exec("sys.setrecursionlimit(old)\\nr = depth(100)\\nassert r == 100")
        nested = []
        for _ in range(60):
            nested = [nested]
        assert s.call(len, nested) == 1
        # MemoryError inside a call, and from a failed huge allocation.
        try:
            s.call(bytearray, 1 << 60)
        except ExecutionFailed as e:
            assert e.excinfo.type.__name__ in ("MemoryError", "OverflowError"), e.excinfo
        # Deep recursion in the caller, calling in from its deepest frame.
        def dive(n):
            if n == 0:
                try:
                    return s.call(abs, -5)
                except RecursionError:
                    return "recursion"
            return dive(n - 1)
        for depth in (100, sys.getrecursionlimit() - 60, sys.getrecursionlimit() - 20):
            try:
                r = dive(depth)
            except RecursionError:
                r = "recursion"
            assert r in (5, "recursion"), r
        assert s.call(abs, -6) == 6
        s.close()
        print("OK")
        """
    )


# -- queue items whose interpreter is gone --------------------------------------------------


def test_unbound_items_through_the_native_api() -> None:
    assert_ok(
        """
        from subinterp_rs import Subinterpreter, _native

        R, E, X = _native.UNBOUND_REMOVE, _native.UNBOUND_ERROR, _native.UNBOUND_REPLACE
        qid = _native.queue_create(0, X)
        s = Subinterpreter.create()
        s.prepare_main(qid=qid, R=R, E=E, X=X)
        s.exec(
            "from subinterp_rs import _native\\n"
            "buf = bytearray(b'owned by the subinterpreter')\\n"
            "put = lambda v, op: _native.queue_put(qid, v, op, False, None)\\n"
            "put(1, R)\\n"
            "put(memoryview(buf), X)\\n"   # a buffer of the closing interpreter
            "put(('t', 2), E)\\n"
            "put('default', -1)\\n"         # the queue's default: X
            "put('gone', R)\\n"
        )
        _native.queue_put(qid, "from main", R, False, None)
        assert _native.queue_get_count(qid) == 6
        s.close()  # REMOVE items vanish; the others become unbound
        assert _native.queue_get_count(qid) == 4
        got = [_native.queue_get(qid, False, None) for _ in range(4)]
        assert got == [(None, X), (None, E), (None, X), ("from main", None)], got
        assert _native.queue_get_count(qid) == 0
        _native.queue_release(qid)
        assert _native.queue_list_all() == []
        print("OK")
        """
    )


def test_unbound_items_through_the_facade_keep_the_queue_usable() -> None:
    assert_ok(
        """
        import threading
        from subinterp_rs import interpreters
        from subinterp_rs.interpreters import (
            UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE, ItemInterpreterDestroyed,
        )

        q = interpreters.create_queue(maxsize=3)
        s = interpreters.create()
        s.prepare_main(q=q)
        s.exec(
            "from subinterp_rs.interpreters import UNBOUND_ERROR, UNBOUND_REMOVE\\n"
            "q.put('a', unbounditems=UNBOUND_ERROR)\\n"
            "q.put('b', unbounditems=UNBOUND_REMOVE)\\n"
            "q.put('c')\\n"
        )
        assert q.full()
        # A put blocked on the full queue is released by the REMOVE item going away.
        blocked = threading.Thread(target=lambda: q.put("after", timeout=10))
        blocked.start()
        s.close()
        blocked.join(15)
        assert not blocked.is_alive()
        try:
            q.get_nowait()
        except ItemInterpreterDestroyed:
            pass
        else:
            raise AssertionError("UNBOUND_ERROR item did not raise")
        assert q.get_nowait() is UNBOUND
        assert q.get_nowait() == "after"
        assert q.empty()
        q.put("still works")
        assert q.get(timeout=1) == "still works"
        print("OK")
        """
    )


# -- legacy interpreters ----------------------------------------------------------------------


def test_legacy_interpreter_uses_the_whole_package() -> None:
    # Our module is a pyo3-ffi multi-phase module with no per-module state, so a legacy
    # (shared GIL, shared allocator, single-phase extensions allowed) interpreter may import
    # it: queues, nested interpreters and the facade work there.
    assert_ok(
        """
        import threading
        from subinterp_rs import InterpreterConfig, InterpreterError, Subinterpreter, interpreters

        q = interpreters.create_queue()
        with Subinterpreter.create(InterpreterConfig.legacy()) as legacy:
            legacy.prepare_main(q=q)
            legacy.exec(
                "import subinterp_rs\\n"
                "from subinterp_rs import InterpreterConfig, Subinterpreter, interpreters\\n"
                "with Subinterpreter.create(InterpreterConfig.legacy()) as inner:\\n"
                "    r1 = inner.call(divmod, 7, 2)\\n"
                "with Subinterpreter.create() as iso:\\n"
                "    r2 = iso.call(pow, 2, 10)\\n"
                "i = interpreters.create()\\n"
                "i.prepare_main(q=q)\\n"
                "i.exec('q.put(\\"from nested\\")')\\n"
                "i.close()\\n"
                "q.put((r1, r2))\\n"
                "q.put(memoryview(b'legacy buffer'))\\n"
            )
            assert q.get(timeout=5) is interpreters.UNBOUND  # its putter was closed
            assert q.get(timeout=5) == ((3, 1), 1024)
            assert bytes(q.get(timeout=5)) == b"legacy buffer"
            # Shared GIL: two threads, one interpreter; one of them is refused while the
            # other runs.
            barrier = threading.Barrier(2)
            out = []
            def run():
                barrier.wait()
                try:
                    legacy.exec("import time; time.sleep(0.2)")
                    out.append("ran")
                except InterpreterError:
                    out.append("refused")
            ts = [threading.Thread(target=run) for _ in range(2)]
            for t in ts: t.start()
            for t in ts: t.join()
            assert sorted(out) in (["ran", "refused"], ["ran", "ran"]), out
        print("OK")
        """
    )


# -- fork and exec --------------------------------------------------------------------------

_NO_FORK_CONFIGS = [
    "InterpreterConfig(gil='shared')",
    "InterpreterConfig(use_main_obmalloc=True, gil='shared')",
    "InterpreterConfig(use_main_obmalloc=True, gil='default', allow_daemon_threads=True,"
    " check_multi_interp_extensions=False)",
    "InterpreterConfig(allow_threads=False)",
]


@pytest.mark.parametrize("config", _NO_FORK_CONFIGS)
def test_fork_and_exec_refused_where_the_config_forbids_them(config: str) -> None:
    assert_ok(
        f"""
        import os
        from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter

        with Subinterpreter.create({config}) as s:
            for op in (
                "import os; os.fork()",
                "import os; os.forkpty()",
                "import os; os.execv('/bin/true', ['true'])",
                "import os; os.execve('/bin/true', ['true'], dict())",
            ):
                try:
                    s.exec(op)
                except ExecutionFailed as e:
                    assert e.excinfo.type.__name__ == "RuntimeError", (op, e.excinfo)
                else:
                    raise AssertionError(f"{{op}} was allowed")
            # Spawning a program (fork + exec in C, no Python in the child) stays allowed.
            s.exec("import subprocess; r = subprocess.run(['/bin/true']).returncode")
            s.exec("assert r == 0")
        print("OK")
        """
    )


def test_fork_inside_a_fork_allowing_subinterpreter_does_not_kill_the_child() -> None:
    # CPython can fork only from the main interpreter: the child of os.fork() in a
    # subinterpreter died ('Fatal Python error: _PyInterpreterState_DeleteExceptMain: not main
    # interpreter'). Refusing with a clear error (since de4adcf) is fine too.
    ran = run_snippet(
        """
        import os
        from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter

        with Subinterpreter.create(InterpreterConfig.legacy()) as s:
            try:
                s.exec(
                    "import os\\n"
                    "pid = os.fork()\\n"
                    "if pid == 0:\\n"
                    "    os._exit(5)\\n"
                    "_, st = os.waitpid(pid, 0)\\n"
                    "code = os.waitstatus_to_exitcode(st)\\n"
                )
                s.exec("assert code == 5, code")
            except ExecutionFailed as e:  # refused with a clear error: fine too
                assert e.excinfo.type.__name__ in ("RuntimeError", "InterpreterError"), e
        print("OK")
        """
    )
    assert ran.lines()[-1:] == ["OK"], ran.detail()


@pytest.mark.parametrize("how", ["forkpty", "preexec_fn"])
def test_every_fork_from_main_is_guarded(how: str) -> None:
    # The fork guard used to wrap os.fork only: os.forkpty() and subprocess's preexec_fn
    # (the child runs CPython's after-fork cleanup) killed the child (fixed in de4adcf).
    ran = run_snippet(
        f"""
        import os, signal, subprocess, time
        from subinterp_rs import InterpreterError, Subinterpreter

        s = Subinterpreter.create()
        try:
            if {how!r} == "forkpty":
                pid, fd = os.forkpty()
                if pid == 0:
                    os._exit(7)
                deadline = time.monotonic() + 10
                while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
                    if time.monotonic() > deadline:  # the child hangs (3.12): end it
                        os.kill(pid, signal.SIGKILL)
                        done = os.waitpid(pid, 0)
                        break
                    time.sleep(0.05)
                assert os.waitstatus_to_exitcode(done[1]) == 7, done
            else:
                p = subprocess.run(["/bin/echo", "hi"], preexec_fn=lambda: None,
                                   capture_output=True, text=True, timeout=10)
                assert p.returncode == 0 and p.stdout == "hi\\n", p
        except InterpreterError as e:  # refused with a clear error: fine too
            assert "Close them first" in str(e), e
        s.close()
        print("OK")
        """,
        timeout=60,
    )
    assert ran.lines()[-1:] == ["OK"], ran.detail()


# -- handles travelling between interpreters ------------------------------------------------


def test_low_level_handle_passed_to_another_interpreter_does_not_take_ownership() -> None:
    # An owning handle used to pickle (and copy) as an owning one: the copy destroyed the
    # interpreter when it was collected (fixed in de4adcf).
    assert_ok(
        """
        import copy, gc
        from subinterp_rs import Subinterpreter, _native

        def peek(handle):
            return (handle.id, handle.owned, handle.call(abs, -4))

        a, b = Subinterpreter.create(), Subinterpreter.create()
        assert b.call(peek, a) == (a.id, False, 4)
        gc.collect()
        assert a.id in [i for i, _ in _native.list_all()], "b's copy closed a"
        c = copy.copy(a)
        assert not c.owned
        del c
        gc.collect()
        assert a.call(abs, -1) == 1
        a.close()
        b.close()
        print("OK")
        """
    )


def test_facade_interpreter_used_from_another_interpreter() -> None:
    assert_ok(
        """
        import gc
        from subinterp_rs import interpreters, InterpreterNotFoundError, _native

        a, b = interpreters.create(), interpreters.create()

        def drive(target):
            target.exec("x = 41")
            return (target.id, target.call(abs, -42))

        assert b.call(drive, a) == (a.id, 42)
        gc.collect()
        a.exec("assert x == 41")  # b's object for a did not close it

        def close_it(target):
            target.close()

        b.call(close_it, a)
        try:
            a.exec("pass")
        except InterpreterNotFoundError:
            pass
        else:
            raise AssertionError("a survived being closed from b")
        # Main's handle used from inside itself.
        main = interpreters.get_main()
        def poke(m):
            try:
                m.exec("pass")
            except Exception as e:
                return type(e).__name__
            return "ran"
        assert b.call(poke, main) == "InterpreterError"
        b.close()
        assert [i for i, _ in _native.list_all()] == [0]
        print("OK")
        """
    )


# -- handles in reference cycles --------------------------------------------------------------


def test_handles_in_reference_cycles_are_closed_by_gc() -> None:
    assert_ok(
        """
        import gc, weakref
        from subinterp_rs import Subinterpreter, _native, interpreters

        def ids():
            return {i for i, _ in _native.list_all()}

        gc.disable()
        for _ in range(5):
            low = Subinterpreter.create()
            cycle = [low]
            cycle.append(cycle)
            fac = interpreters.create()
            node = {"interp": fac}
            node["self"] = node
            low_id, fac_id = low.id, fac.id
            low.exec("x = 1")
            fac.exec("x = 1")
            del low, cycle, fac, node
            assert {low_id, fac_id} <= ids()
            gc.collect()
            assert not ({low_id, fac_id} & ids()), ids()

        # A finalizer in the same cycle using the handle: whichever __del__ runs first,
        # the other gets an exception (ignored), never a crash.
        class User:
            def __del__(self):
                self.s.exec("pass")

        for _ in range(5):
            u = User()
            u.s = Subinterpreter.create()
            u.me = u
            del u
            gc.collect()
        assert ids() == {0}, ids()

        # Cycles inside a subinterpreter that hold handles to other subinterpreters go when
        # that subinterpreter collects them, or when it is closed.
        host = Subinterpreter.create()
        host.exec(
            "import gc\\nfrom subinterp_rs import Subinterpreter, interpreters\\n"
            "a = [Subinterpreter.create()]; a.append(a)\\n"
            "b = {'i': interpreters.create()}; b['b'] = b\\n"
            "ids = (a[0].id, b['i'].id)\\n"
        )
        host.exec("del a, b\\ngc.collect()")
        host.exec(
            "from subinterp_rs import _native\\n"
            "assert not set(ids) & {i for i, _ in _native.list_all()}\\n"
            "c = [Subinterpreter.create()]; c.append(c)\\n"
        )
        host.close()  # c is collected while host finalizes
        gc.enable()
        assert ids() == {0}, ids()
        print("OK")
        """
    )
