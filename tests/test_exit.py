"""Process exit with live subinterpreters: always a clean exit with the right status.

Whatever state the interpreters are in when the program ends (idle, running Python code or
blocked in C code in daemon threads, blocked in ``Queue.get()`` or ``time.sleep()``, holding
queue items or buffers, nested, in reference cycles), the process must exit with the status
the program asked for (0 at the end of the script, ``n`` for ``sys.exit(n)``, 1 for an uncaught
exception), print no ``Fatal Python error`` and not hang. ``subinterp_rs._shutdown`` (an atexit
hook) closes them; what it cannot stop makes it end the process with ``os._exit``.

Every scenario runs in its own process, on the low-level API and the PEP 734 facade.
Scenarios marked ``xfail`` are known bugs (see the reason).
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest
from _helpers import FORCED_EXIT, run_snippet

# Each scenario: code that leaves interpreters behind; the script then ends with a line
# "print('end', flush=True)" followed by the exit statement of the test.
SCENARIOS: dict[str, str] = {
    "idle": """
        from subinterp_rs import InterpreterConfig, Subinterpreter, interpreters
        keep = [Subinterpreter.create(cfg) for cfg in (
            InterpreterConfig(), InterpreterConfig.legacy(), InterpreterConfig(gil="shared"))]
        for s in keep:
            s.exec("import json, threading; x = json.dumps([1])")
        facade = [interpreters.create() for _ in range(2)]
        disarmed = Subinterpreter.create()
        disarmed.disarm()
    """,
    "busy_python_in_daemon_threads": """
        import threading, time
        from subinterp_rs import Subinterpreter, interpreters
        low = Subinterpreter.create()
        fac = interpreters.create()
        for run in (low.exec, fac.exec):
            threading.Thread(target=run, args=("while True: pass",), daemon=True).start()
        while not (low.is_running() and fac.is_running()):
            time.sleep(0.01)
    """,
    "blocked_in_queue_get": """
        import threading, time
        from subinterp_rs import Subinterpreter, interpreters
        q = interpreters.create_queue()
        low, fac = Subinterpreter.create(), interpreters.create()
        for s in (low, fac):
            s.prepare_main(q=q)
            threading.Thread(target=s.exec, args=("q.get()",), daemon=True).start()
        while not (low.is_running() and fac.is_running()):
            time.sleep(0.01)
        time.sleep(0.2)
    """,
    "blocked_in_queue_put": """
        import threading, time
        from subinterp_rs import Subinterpreter, interpreters
        q = interpreters.create_queue(maxsize=1)
        q.put("full")
        s = Subinterpreter.create()
        s.prepare_main(q=q)
        threading.Thread(target=s.exec, args=("q.put('more')",), daemon=True).start()
        while not s.is_running():
            time.sleep(0.01)
        time.sleep(0.2)
    """,
    "blocked_in_sleep": """
        import threading, time
        from subinterp_rs import Subinterpreter, interpreters
        low, fac = Subinterpreter.create(), interpreters.create()
        for s in (low, fac):
            threading.Thread(
                target=s.exec, args=("import time; time.sleep(3600)",), daemon=True).start()
        while not (low.is_running() and fac.is_running()):
            time.sleep(0.01)
        time.sleep(0.2)
    """,
    "queues_in_use": """
        from subinterp_rs import Subinterpreter, interpreters
        from subinterp_rs.interpreters import UNBOUND_ERROR, UNBOUND_REMOVE
        q1, q2 = interpreters.create_queue(), interpreters.create_queue(maxsize=2)
        s, f = Subinterpreter.create(), interpreters.create()
        for x in (s, f):
            x.prepare_main(q1=q1, q2=q2)
            x.exec(
                "from subinterp_rs.interpreters import UNBOUND_ERROR\\n"
                "buf = bytearray(b'owned here')\\n"
                "q1.put(memoryview(buf)); q1.put([1, 2]); q1.put(q2)\\n"
                "q2.put('x', unbounditems=UNBOUND_ERROR)\\n"
            )
        q1.put(memoryview(bytearray(b'main')), unbounditems=UNBOUND_REMOVE)
        q1.put(q1)  # a queue holding itself
    """,
    "threads_inside_subinterpreters": """
        from subinterp_rs import InterpreterConfig, Subinterpreter
        s = Subinterpreter.create()
        s.exec(
            "import threading, time\\n"
            "t = threading.Thread(target=time.sleep, args=(0.3,))\\n"   # joined at close
            "t.start()\\n"
        )
        d = Subinterpreter.create(InterpreterConfig(allow_daemon_threads=True))
        d.exec(
            "import threading, time\\n"
            "def spin():\\n"
            "    while True: time.sleep(0.01)\\n"
            "threading.Thread(target=spin, daemon=True).start()\\n"
        )
    """,
    "nested_and_cycles": """
        import gc
        from subinterp_rs import Subinterpreter, interpreters
        gc.disable()
        outer = Subinterpreter.create()
        outer.exec(
            "from subinterp_rs import Subinterpreter, interpreters\\n"
            "inner = Subinterpreter.create()\\n"
            "inner.exec('from subinterp_rs import interpreters as i; x = i.create()')\\n"
            "loop = [interpreters.create()]; loop.append(loop)\\n"
        )
        cycle = [Subinterpreter.create(), interpreters.create()]
        cycle.append(cycle)
        del cycle
    """,
    "exec_loops_in_daemon_threads": """
        import threading, time
        from subinterp_rs import InterpreterError, Subinterpreter
        interps = [Subinterpreter.create() for _ in range(3)]
        def loop(s):
            while True:
                try:
                    s.exec("import os; os.listdir('.'); sum(range(1000))")
                except InterpreterError:
                    pass
        for s in interps:
            threading.Thread(target=loop, args=(s,), daemon=True).start()
        time.sleep(0.3)
    """,
    "memoryview_of_a_subinterpreter_alive_in_main": """
        from subinterp_rs import Subinterpreter
        s = Subinterpreter.create()
        s.exec("buf = bytearray(b'hello')")
        def view():
            import __main__
            return memoryview(__main__.buf)
        mv = s.call(view)
        assert bytes(mv) == b"hello"
    """,
}

EXITS = {
    "end": ("", 0),
    "sys_exit_3": ("import sys; sys.exit(3)", 3),
    "raise_systemexit_3": ("raise SystemExit(3)", 3),
    "builtin_exit_3": ("exit(3)", 3),
    "uncaught": ("raise ValueError('boom')", 1),
}

# What the shutdown cannot stop: a subinterpreter blocked in C code that only a signal to the
# main thread could interrupt (time.sleep, lock waits, I/O) for longer than its grace period.
# CPython would abort, hang or crash finalizing it (3.14+ ends it under its thread's feet:
# a segfault under load), so the process ends with os._exit (allowed, reported) after
# flushing every buffered file and the logging handlers, keeping the status a normal exit
# would have had.
FORCING = ("blocked_in_sleep",)
MAY_FORCE = set(FORCING)


def _script(scenario: str, exit_: str) -> str:
    stmt, _ = EXITS[exit_]
    return textwrap.dedent(SCENARIOS[scenario]) + "print('end', flush=True)\n" + stmt + "\n"


def _params() -> list[object]:
    return [
        pytest.param(scenario, exit_, id=f"{scenario}-{exit_}")
        for scenario in SCENARIOS
        for exit_ in EXITS
    ]


@pytest.mark.parametrize(("scenario", "exit_"), _params())
def test_exit_with_live_interpreters(scenario: str, exit_: str) -> None:
    _, rc = EXITS[exit_]
    ran = run_snippet(_script(scenario, exit_), rc=rc, timeout=60)
    assert ran.lines()[:1] == ["end"], ran.detail()
    if exit_ == "uncaught":
        assert "ValueError: boom" in ran.stderr, ran.detail()
    if scenario not in MAY_FORCE:
        assert not ran.forced_exit, ran.detail()
    # The shutdown waits at most a couple of seconds for running interpreters to stop.
    assert ran.seconds < 30, ran.detail()


@pytest.mark.xfail(
    sys.version_info < (3, 13),
    reason="CPython 3.12 bug (also with the stdlib's _xxsubinterpreters.create(isolated=False))"
    ": a shared-GIL subinterpreter running Python code never hands the GIL to other "
    "interpreters' threads, so main starves (the program hangs before it ends)",
    strict=False,
)
def test_exit_while_a_shared_gil_interpreter_runs_python_code() -> None:
    ran = run_snippet(
        """
        import threading, time
        from subinterp_rs import InterpreterConfig, Subinterpreter
        legacy = Subinterpreter.create(InterpreterConfig.legacy())
        shared = Subinterpreter.create(InterpreterConfig(gil="shared"))
        for s in (legacy, shared):
            threading.Thread(target=s.exec, args=("while True: pass",), daemon=True).start()
        while not (legacy.is_running() and shared.is_running()):
            time.sleep(0.01)
        time.sleep(0.2)
        print("end", flush=True)
        """,
        timeout=20,
    )
    assert ran.lines() == ["end"], ran.detail()
    assert not ran.forced_exit, ran.detail()


def test_exit_skips_no_atexit_handler() -> None:
    # atexit handlers registered before `import subinterp_rs` run after its _shutdown hook
    # (LIFO): they must still run when the interpreters can all be closed.
    ran = run_snippet(
        """
        import atexit
        atexit.register(print, "early handler", flush=True)
        from subinterp_rs import Subinterpreter, interpreters
        keep = (Subinterpreter.create(), interpreters.create())
        atexit.register(print, "late handler", flush=True)
        """
    )
    assert ran.lines() == ["late handler", "early handler"], ran.detail()


def test_exit_with_a_shared_buffer_alive_runs_every_atexit_handler() -> None:
    ran = run_snippet(
        """
        import atexit
        # Runs after the package's exit hook closed the interpreter: the memoryview over the
        # closed interpreter's bytearray still reads (its memory is kept for it).
        atexit.register(lambda: print("early handler", bytes(mv), bytes(big[-3:]), flush=True))
        from subinterp_rs import Subinterpreter
        s = Subinterpreter.create()
        s.exec("buf = bytearray(b'hello'); large = bytearray(b'xyz' * 100_000)")
        def view(name):
            import __main__
            return memoryview(getattr(__main__, name))
        mv = s.call(view, "buf")
        big = s.call(view, "large")
        """
    )
    assert ran.lines() == ["early handler b'hello' b'xyz'"], ran.detail()
    assert FORCED_EXIT not in ran.stderr, ran.detail()


@pytest.mark.parametrize("api", ["low", "facade"])
def test_exit_while_daemon_threads_create_and_close_interpreters(api: str) -> None:
    make = "Subinterpreter.create()" if api == "low" else "interpreters.create()"
    for delay in (0.1, 0.3, 0.5):
        run_snippet(
            f"""
            import threading, time
            from subinterp_rs import InterpreterError, Subinterpreter, interpreters

            def churn():
                while True:
                    try:
                        s = {make}
                        s.exec("x = 1")
                        s.call(abs, -1)
                        s.close()
                    except InterpreterError:
                        pass

            for _ in range(4):
                threading.Thread(target=churn, daemon=True).start()
            time.sleep({delay})
            print("end", flush=True)
            """,
            timeout=60,
        )


def test_no_create_or_run_after_the_shutdown_hook() -> None:
    # atexit handlers registered before `import subinterp_rs` run after its _shutdown hook:
    # interpreters are closed by then, and creating or entering one is refused with a clear
    # error (daemon threads doing so at exit crashed 3.12-3.15 in finalization).
    ran = run_snippet(
        """
        import atexit

        def late_use():
            from subinterp_rs import InterpreterError, Subinterpreter, interpreters
            for make in (Subinterpreter.create, interpreters.create):
                try:
                    make()
                except InterpreterError as exc:
                    print("create:", exc, flush=True)
            try:
                kept.exec("x = 1")
            except InterpreterError as exc:
                print("exec:", type(exc).__name__, flush=True)

        atexit.register(late_use)
        from subinterp_rs import interpreters
        kept = interpreters.create()
        kept.exec("x = 0")
        """
    )
    assert ran.lines() == [
        "create: cannot create a subinterpreter at interpreter shutdown",
        "create: cannot create a subinterpreter at interpreter shutdown",
        "exec: InterpreterNotFoundError",
    ], ran.detail()


def test_exit_while_a_thread_of_one_subinterpreter_runs_in_another() -> None:
    # A thread started inside `a` loops running code in `b`: at exit both stop and close, no
    # forced exit (the thread goes back to `a` and ends there).
    ran = run_snippet(
        """
        from subinterp_rs import Subinterpreter

        def start(inner):
            import threading
            def loop():
                while True:
                    inner.exec("import time\\nfor _ in range(100): time.sleep(0.001)")
            threading.Thread(target=loop).start()

        if __name__ == "__main__":
            a, b = Subinterpreter.create(), Subinterpreter.create()
            a.call(start, b)
            import time
            time.sleep(0.3)
            print("end", flush=True)
        """,
        timeout=60,
    )
    assert ran.lines() == ["end"], ran.detail()
    assert not ran.forced_exit, ran.detail()


@pytest.mark.parametrize(
    ("blocked_in", "forced"), [("q.get", False), ("time.sleep", True), ("lock.acquire", True)]
)
def test_exit_with_a_stuck_non_daemon_thread_inside(blocked_in: str, forced: bool) -> None:
    # Plain Python waits forever at exit for a non-daemon thread that never ends; one inside a
    # subinterpreter must not make the exit hang: a queue wait is woken with SystemExit (the
    # interpreter then closes normally), a wait in C code gets the grace period, then the
    # process ends with os._exit and status 0.
    ran = run_snippet(
        f"""
        from subinterp_rs import Subinterpreter, interpreters
        q = interpreters.create_queue()
        s = Subinterpreter.create()
        s.prepare_main(q=q)
        s.exec(
            "import threading, time\\n"
            "lock = threading.Lock(); lock.acquire()\\n"
            "threading.Thread(target={blocked_in}, args=(3600,) if {blocked_in!r} == 'time.sleep' "
            "else ()).start()"
        )
        print("end", flush=True)
        """,
        timeout=30,
    )
    assert ran.lines() == ["end"], ran.detail()
    assert ran.forced_exit == forced, ran.detail()
    assert "Fatal Python error" not in ran.stderr, ran.detail()


# A daemon thread runs a subinterpreter blocked in C code at exit (the forced exit where
# CPython would abort), while the program leaves data in buffers.
BLOCKED_WITH_DATA = """
    import logging, os, sys, threading, time
    from subinterp_rs import Subinterpreter, interpreters
    path = sys.argv[1]
    s = Subinterpreter.create()
    sleeping = interpreters.create_queue()
    s.prepare_main(sleeping=sleeping)
    script = "import time; sleeping.put(1); time.sleep(3600)"
    threading.Thread(target=s.exec, args=(script,), daemon=True).start()
    sleeping.get(timeout=60)
    time.sleep(0.1)
    text = open(path + ".txt", "w")                 # written, never closed
    text.write("text data")
    raw = open(path + ".bin", "wb")
    raw.write(b"binary data")
    handler = logging.FileHandler(path + ".log")   # a logging handler with a buffer
    logging.getLogger().addHandler(handler)
    logging.getLogger().warning("logged")
    keep = [{"file": open(path + ".deep", "a")}]   # reachable only through a container
    keep[0]["file"].write("deep data")
    print("end", flush=True)
"""


@pytest.mark.parametrize("exit_", ["end", "sys_exit_3", "raise_systemexit_3", "builtin_exit_3"])
def test_exit_keeps_buffered_data_and_status(tmp_path: Path, exit_: str) -> None:
    stmt, rc = EXITS[exit_]
    base = str(tmp_path / "out")
    ran = run_snippet(
        textwrap.dedent(BLOCKED_WITH_DATA) + stmt + "\n", rc=rc, timeout=60, args=(base,)
    )
    assert ran.lines() == ["end"], ran.detail()
    assert Path(base + ".txt").read_text() == "text data", ran.detail()
    assert Path(base + ".bin").read_bytes() == b"binary data", ran.detail()
    assert Path(base + ".log").read_text() == "logged\n", ran.detail()
    assert Path(base + ".deep").read_text() == "deep data", ran.detail()
    # The exit is forced (CPython's finalization would end the interpreter under its
    # thread), and reported; nothing buffered is lost and the status is kept.
    assert ran.forced_exit, ran.detail()


@pytest.mark.parametrize("with_package", [False, True], ids=["cpython", "package"])
def test_uncaught_keyboard_interrupt_dies_by_sigint(tmp_path: Path, with_package: bool) -> None:
    # CPython ends by SIGINT after an uncaught KeyboardInterrupt (130 in a shell): so does a
    # program with a subinterpreter blocked at exit.
    setup = textwrap.dedent(BLOCKED_WITH_DATA) if with_package else "import sys\n"
    ran = run_snippet(
        setup + "raise KeyboardInterrupt\n",
        rc=-signal.SIGINT,
        timeout=60,
        args=(str(tmp_path / "out"),),
    )
    assert "KeyboardInterrupt" in ran.stderr, ran.detail()
