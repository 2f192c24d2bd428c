"""The PEP 734 facade: interpreters' lives, from creation to process exit.

A port of CPython's ``Lib/test/test_interpreters/test_lifecycle.py`` (3.14) plus what may
crash a process if done wrong (closing a running interpreter, exiting with live, running or
nested interpreters, the stdlib's module and ours closing each other's interpreters). Anything
that could crash runs in a subprocess, so a crash fails one test.
"""

import gc
import json
import os
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest
from _helpers import (
    assert_clean,
    clean_interpreters,  # noqa: F401  (fixture)
    interp_exists,
    run_output,
    run_python,
    run_snippet,
    running_in_thread,
    stdlib_interpreters,
)
from subinterp_rs import interpreters
from subinterp_rs.interpreters import ExecutionFailed, InterpreterError

pytestmark = pytest.mark.usefixtures("clean_interpreters")

_std = stdlib_interpreters()
# A module either way for the type checker: the tests that use it skip where it is None.
std = _std or types.ModuleType("no_stdlib_interpreters")


# -- startup ------------------------------------------------------------------------------------

SYS_PATH_0_SCRIPT = '''
import sys
from subinterp_rs import interpreters

orig = sys.path[0]

interp = interpreters.create()
interp.exec(f"""if True:
    import json
    import sys
    print(json.dumps({{
        'main': {orig!r},
        'sub': sys.path[0],
    }}, indent=4), flush=True)
    """)
interp.close()
'''


@pytest.mark.parametrize(
    ("argv", "expected_is_cwd"),
    [
        (["script.py"], True),
        (["-m", "script"], True),
        (["-m", "pkg"], True),
        (["-m", "pkg.script"], True),
        (["-c", "import script"], False),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_sys_path_0(tmp_path: Path, argv: list[str], expected_is_cwd: bool) -> None:
    # The main interpreter's sys.path[0] is used by subinterpreters.
    cwd = os.path.realpath(tmp_path)
    os.makedirs(os.path.join(cwd, "pkg"))
    for path in ("pkg/__init__.py",):
        with open(os.path.join(cwd, path), "w") as f:
            f.write("")
    for path in ("pkg/__main__.py", "pkg/script.py", "script.py"):
        with open(os.path.join(cwd, path), "w") as f:
            f.write(SYS_PATH_0_SCRIPT)
    proc = run_python(*argv, cwd=cwd, check=True)
    assert proc.stderr == ""
    data = json.loads(proc.stdout)
    assert data["sub"] == data["main"]
    assert data["sub"] == (cwd if expected_is_cwd else "")


def test_initial_state_of_subinterpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        import sys, threading
        print(__name__)
        print(sys.argv == sys.modules['sys'].argv)
        print(threading.current_thread() is threading.main_thread())
        print(type(__builtins__).__name__ in ('module', 'dict'))
        """,
    )
    lines = out.splitlines()
    assert lines[0] == "__main__"
    assert lines[1] == "True"
    assert lines[3] == "True"


def test_daemon_threads_refused() -> None:
    # Isolated interpreters allow threads but not daemon threads (like the stdlib's).
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec(
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        )
    assert info.value.excinfo.type.__name__ == "RuntimeError"
    interp.close()


# -- finalization -------------------------------------------------------------------------------


def test_gh_109793() -> None:
    # Finalization finishes and the right exit code is reported, even when
    # subinterpreters get cleaned up at the end.
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        try:
            raise Exception
        finally:
            interp.close()
        """,
        check=False,
    )
    assert "Traceback" in proc.stderr
    assert_clean(proc, rc=1)


def test_exit_with_idle_interpreters() -> None:
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interps = [interpreters.create() for _ in range(3)]
        for interp in interps:
            interp.exec("import json, threading; x = json.dumps([1])")
        keep = interps[0]
        print('done')
        """
    )
    assert proc.stdout == "done\n"
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr


def test_exit_with_uncaught_exception_and_live_interpreters() -> None:
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        raise SystemExit(7)
        """,
        rc=7,
    )
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        raise ValueError('boom')
        """,
        rc=1,
    )
    assert "ValueError: boom" in proc.stderr


def test_exit_with_nested_interpreters() -> None:
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        interp.exec('''if True:
            from subinterp_rs import interpreters
            inner = interpreters.create()
            inner.exec("from subinterp_rs import interpreters as i; innermost = i.create()")
            ''')
        print(len(interpreters.list_all()))
        """
    )
    assert proc.stdout.strip() == "4"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("", "while True:\n    pass"),
        ("q = interpreters.create_queue(); interp.prepare_main(q=q)", "q.get()"),
    ],
    ids=["running_python_code", "blocked_in_queue_get"],
)
def test_exit_while_a_thread_runs_in_an_interpreter(setup: str, code: str) -> None:
    proc = run_snippet(
        f"""
        import threading, time
        from subinterp_rs import interpreters
        interp = interpreters.create()
        {setup}
        t = threading.Thread(target=interp.exec, args=({code!r},), daemon=True)
        t.start()
        while not interp.is_running():
            time.sleep(0.01)
        print('exiting', flush=True)
        """,
        timeout=60,
    )
    assert proc.stdout == "exiting\n"


def test_exit_with_pending_queue_items() -> None:
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        q = interpreters.create_queue()
        interp = interpreters.create()
        interp.prepare_main(q=q)
        interp.exec("q.put(memoryview(b'spam')); q.put([1, 2]); q.put('x')")
        q.put(memoryview(bytearray(b'main')))
        print(q.qsize())
        """
    )
    assert proc.stdout.strip() == "4"


def test_exit_from_thread_that_created_interpreters() -> None:
    proc = run_snippet(
        """
        import threading
        from subinterp_rs import interpreters
        made = []
        def make():
            made.append(interpreters.create())
            made[-1].exec('x = 1')
        threads = [threading.Thread(target=make) for _ in range(3)]
        for t in threads: t.start()
        for t in threads: t.join()
        # Used from, and one closed from, threads other than the creating one.
        print([interp.call(divmod, 7, 2) for interp in made])
        made[0].close()
        """
    )
    assert proc.stdout.strip() == "[(3, 1), (3, 1), (3, 1)]"


def test_cleanup_in_repl() -> None:
    # gh-135729: a subinterpreter used in the REPL led to an unraisable exception during
    # finalization.
    proc = run_python(
        "-i",
        input="from subinterp_rs import interpreters\ninterpreters.create()\nexit()\n",
        timeout=60,
        check=True,
    )
    assert "Traceback" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr


# -- close() while something runs ---------------------------------------------------------------


def test_close_still_running() -> None:
    proc = run_snippet(
        """
        import os, threading, time
        from subinterp_rs import interpreters
        interp = interpreters.create()
        r, w = os.pipe()
        t = threading.Thread(target=interp.exec, args=(f"import os; os.read({r}, 1)",))
        t.start()
        while not interp.is_running():
            time.sleep(0.01)
        try:
            interp.close()
        except interpreters.InterpreterError as exc:
            print('refused', 'running' in str(exc))
        print('still running', interp.is_running())
        os.write(w, b'x')
        t.join()
        interp.close()
        print('closed', [i.id for i in interpreters.list_all()])
        """
    )
    assert proc.stdout.splitlines() == ["refused True", "still running True", "closed [0]"]


def test_close_from_inside_while_running() -> None:
    proc = run_snippet(
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        try:
            interp.exec('''if True:
                from subinterp_rs import interpreters
                interpreters.get_current().close()
                ''')
        except interpreters.ExecutionFailed as exc:
            print(exc.excinfo.type.__name__)
        print(interp.call(divmod, 5, 3))
        """
    )
    assert proc.stdout.splitlines() == ["InterpreterError", "(1, 2)"]


def _close_while_threads_run(threads: str) -> list[str]:
    """Lines printed by a child that starts ``threads`` (code run in a new interpreter, whose
    threads write ``b'F'`` to the pipe ``w`` when they end), then closes the interpreter."""
    inside = textwrap.indent(textwrap.dedent(threads), " " * 12)
    proc = run_snippet(
        f"""
        import os
        from subinterp_rs import interpreters
        r, w = os.pipe()
        interp = interpreters.create()
        interp.exec(f'''if True:
            import os
            import threading
            import time
{inside}
            ''')
        try:
            interp.close()
            print('closed')
        except interpreters.InterpreterError as exc:
            print('refused:', exc)
        print(os.read(r, 1))
        """,
        timeout=60,
    )
    return proc.stdout.splitlines()


def test_close_with_remaining_threads() -> None:
    # Like the stdlib: close() waits for the interpreter's (non-daemon) threads.
    threads = """
        def task():
            time.sleep(0.5)
            os.write({w}, b'F')

        threads = [threading.Thread(target=task) for _ in range(3)]
        for t in threads:
            t.start()
        """
    assert _close_while_threads_run(threads) == ["closed", "b'F'"]


def test_close_subthreads_still_running() -> None:
    threads = """
        done = False

        def notify_fini():
            global done
            done = True
            t.join()
        threading._register_atexit(notify_fini)

        def task():
            while not done:
                time.sleep(0.1)
            os.write({w}, b'F')
        t = threading.Thread(target=task)
        t.start()
        """
    assert _close_while_threads_run(threads) == ["closed", "b'F'"]


# -- who keeps an interpreter alive -------------------------------------------------------------


def test_reference_from_another_interpreter_keeps_it_alive() -> None:
    holder = interpreters.create()
    interp = interpreters.create()
    interpid = interp.id
    holder.exec(
        f"from subinterp_rs import interpreters\nkept = interpreters.Interpreter({interpid})\n"
    )
    del interp
    gc.collect()
    assert interp_exists(interpid)  # `kept` in holder's __main__ owns a reference
    holder.exec("del kept\nimport gc\ngc.collect()")
    assert not interp_exists(interpid)


def test_nested_interpreter_goes_with_its_last_object() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        inner = interpreters.create()
        print(inner.id)
        """,
    )
    innerid = int(out)
    assert interp_exists(innerid)
    interp.close()  # `inner` (the only Interpreter object of it) dies with interp
    gc.collect()
    assert not interp_exists(innerid)


def test_closing_parent_leaves_referenced_nested_interpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        "from subinterp_rs import interpreters\ninner = interpreters.create()\nprint(inner.id)\n",
    )
    inner = interpreters.Interpreter(int(out))  # main holds a reference too
    interp.close()
    assert interp_exists(inner.id)
    assert inner.call(divmod, 8, 3) == (2, 2)


def test_interpreter_created_in_thread_used_elsewhere() -> None:
    made = []
    t = threading.Thread(target=lambda: made.append(interpreters.create()))
    t.start()
    t.join()
    interp = made.pop()
    assert interp.call(divmod, 9, 5) == (1, 4)
    closer = threading.Thread(target=interp.close)
    closer.start()
    closer.join()
    assert not interp_exists(interp.id)


def test_is_running_reflects_exec_in_other_thread() -> None:
    interp = interpreters.create()
    with running_in_thread(interp), pytest.raises(InterpreterError):
        interp.close()
    interp.close()
    assert not interp_exists(interp.id)


# -- the stdlib's module and ours in one process ------------------------------------------------

needs_stdlib = pytest.mark.skipif(_std is None, reason="no stdlib PEP 734 module (3.13+)")


@needs_stdlib
def test_stdlib_and_ours_close_each_others_interpreters() -> None:
    # Ours closes theirs (whence "stdlib"), as the stdlib's own close() does. The stdlib may
    # refuse to close ours; if it does close one, ours must notice (InterpreterNotFoundError),
    # never crash.
    stdmod = std.__name__
    proc = run_snippet(
        f"""
        import {stdmod} as std
        from subinterp_rs import interpreters

        theirs = std.create()
        try:
            interpreters.Interpreter(theirs.id).close()
            print('ours closed theirs')
        except interpreters.InterpreterError:
            print('ours refused')
        print('theirs alive', theirs.id in {{i.id for i in std.list_all()}})

        ours = interpreters.create()
        ours.exec('y = 2')
        try:
            std.Interpreter(ours.id).close()
            print('theirs closed ours')
        except std.InterpreterError:
            print('theirs refused')
        try:
            ours.exec('y = 3')
            print('ours alive')
            ours.close()
        except interpreters.InterpreterNotFoundError:
            print('ours gone')
        """,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["ours closed theirs", "theirs alive False"]
    assert lines[2:] in (
        ["theirs refused", "ours alive"],
        ["theirs closed ours", "ours gone"],
    )


@needs_stdlib
def test_stdlib_and_ours_exit_together() -> None:
    stdmod = std.__name__
    proc = run_snippet(
        f"""
        import {stdmod} as std
        from subinterp_rs import interpreters
        theirs = std.create()
        ours = interpreters.create()
        ours.exec('import json')
        theirs.exec('import json')
        print(sorted(i.id for i in interpreters.list_all()) ==
              sorted(i.id for i in std.list_all()))
        """,
        timeout=60,
    )
    assert proc.stdout.strip() == "True"


@needs_stdlib
def test_sys_path_0_same_as_stdlib(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, json
        import {std.__name__} as std
        from subinterp_rs import interpreters
        out = {{}}
        for name, mod in (('std', std), ('ours', interpreters)):
            interp = mod.create()
            r, w = __import__('os').pipe()
            interp.exec(f"import os, sys; os.write({{w}}, repr(sys.path[0]).encode())")
            out[name] = __import__('os').read(r, 4096).decode()
            interp.close()
        print(json.dumps(out))
        """
    )
    (tmp_path / "s.py").write_text(script)
    proc = run_python("s.py", cwd=str(tmp_path), check=True)
    data = json.loads(proc.stdout)
    assert data["ours"] == data["std"]


def test_python_version_sanity() -> None:
    # These tests run on every supported Python.
    assert sys.version_info >= (3, 12)
