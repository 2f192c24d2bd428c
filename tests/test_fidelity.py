"""Where the drop-in behaves as the stdlib's ``concurrent.interpreters`` (issue #17, item 3).

The 3.14+ stdlib is the reference: where it exists, each test runs the same steps on it and
on ours side by side; elsewhere it checks ours against what the stdlib does there.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import textwrap
import traceback
import types
from pathlib import Path
from typing import Any

import pytest
import support_fidelity as sfid
import support_futures as sf
from _helpers import run_python, run_snippet, stdlib_interpreters
from subinterp_rs import NotShareableError, Subinterpreter, interpreters
from subinterp_rs.aio import AsyncInterpreterPool
from subinterp_rs.futures import InterpreterPoolExecutor

STDLIB = stdlib_interpreters() if sys.version_info >= (3, 14) else None
"""``concurrent.interpreters`` (3.14+), the reference; ``None`` before."""

both = pytest.mark.parametrize(
    "mod",
    [pytest.param(interpreters, id="ours")]
    + ([pytest.param(STDLIB, id="stdlib")] if STDLIB is not None else []),
)
"""Run a test on our module and, where there is one, on the stdlib's."""

by_name = pytest.mark.parametrize(
    "name",
    [
        "subinterp_rs.interpreters",
        pytest.param(
            "concurrent.interpreters",
            marks=pytest.mark.skipif(STDLIB is None, reason="the stdlib's module: 3.14+"),
        ),
    ],
)
"""The same, by module name, for tests that import it in a child process."""

REMAINING = (
    "<sys>:0: RuntimeWarning: remaining subinterpreters; close them with Interpreter.close()"
)


def _create(mod: Any) -> Any:
    """``mod.create()``; the stdlib's gets this process's ``sys.path`` (ours copy it), so the
    test's modules import there."""
    interp = mod.create()
    if mod is STDLIB:
        interp.exec(f"import sys; sys.path[:] = {sys.path!r}")
    return interp


# -- an argument that pickles but cannot be rebuilt inside -----------------------------------


@both
def test_argument_not_rebuilt_inside_is_not_shareable(mod: Any) -> None:
    interp = _create(mod)
    try:
        for args, kwargs in (((sfid.Unrebuildable(),), {}), ((), {"x": sfid.Unrebuildable()})):
            with pytest.raises(mod.NotShareableError, match="args not shareable") as info:
                interp.call(sf.echo, *args, **kwargs)
            cause = info.value.__cause__
            assert isinstance(cause, Exception)
            assert "cannot rebuild here" in str(cause)
        with pytest.raises(mod.NotShareableError, match="func not shareable") as info:
            interp.call(types.MethodType(sf.echo, sfid.Unrebuildable()))
        assert "cannot rebuild here" in str(info.value.__cause__)
        assert interp.call(sf.square, 3) == 9  # still usable
    finally:
        interp.close()


def test_argument_not_rebuilt_inside_low_level() -> None:
    with Subinterpreter.create() as si:
        with pytest.raises(NotShareableError, match="argument 2 could not be rebuilt") as info:
            si.call(sf.echo, 1, sfid.Unrebuildable())
        assert "ValueError: cannot rebuild here" in str(info.value)
        assert "cannot rebuild here" in str(info.value.__cause__)


def test_argument_not_rebuilt_inside_our_executor() -> None:
    with InterpreterPoolExecutor(1) as pool:
        with pytest.raises(NotShareableError, match="args not shareable") as info:
            pool.submit(sf.echo, sfid.Unrebuildable()).result(timeout=60)
        assert "cannot rebuild here" in str(info.value)
        assert "could not be unpickled" in str(info.value.__cause__)
        # The task's callable travels with its arguments: "args", as the stdlib's executor.
        method = types.MethodType(sf.echo, sfid.Unrebuildable())
        with pytest.raises(NotShareableError, match="args not shareable") as info:
            pool.submit(method).result(timeout=60)
        assert "could not be unpickled" in str(info.value.__cause__)
        assert pool.submit(sf.square, 3).result(timeout=60) == 9  # still usable
        assert pool.submit(sf.square, 4).result(timeout=60) == 16


@pytest.mark.skipif(sys.version_info < (3, 14), reason="concurrent.futures.interpreter: 3.14+")
def test_stdlib_executor_over_our_module_does_not_hang() -> None:
    # The stdlib's executor waits for the exception of a failed call on a queue that only the
    # call fills: an argument that did not rebuild must not look like a failed call.
    ran = run_snippet(
        f"""
        import sys
        sys.path[:0] = [{os.path.dirname(__file__)!r}]
        import concurrent.futures.interpreter as cfi
        from subinterp_rs import interpreters
        import support_fidelity, support_futures
        cfi.interpreters = interpreters
        with cfi.InterpreterPoolExecutor(1) as pool:
            f = pool.submit(support_futures.echo, support_fidelity.Unrebuildable())
            try:
                f.result(timeout=60)
            except interpreters.NotShareableError as exc:
                print("NotShareableError", exc.__cause__ is not None)
            print(pool.submit(support_futures.square, 5).result(timeout=60))
        """,
        timeout=90,
    )
    assert ran.lines() == ["NotShareableError True", "25"], ran.detail()


# -- close() of an interpreter the stdlib's _interpreters.create() made ------------------------


@pytest.mark.skipif(sys.version_info < (3, 13), reason="whence 'stdlib': 3.13+")
@both
def test_close_stdlib_made_interpreter(mod: Any) -> None:
    import _interpreters  # type: ignore[import-not-found,unused-ignore]

    id = _interpreters.create()
    interp = mod.Interpreter(id)
    assert interp.whence == "_interpreters module"
    interp.close()
    assert id not in [i.id for i in mod.list_all()]
    with pytest.raises(_interpreters.InterpreterNotFoundError):
        _interpreters.destroy(id)


@both
def test_close_c_api_interpreter_refused(mod: Any) -> None:
    with Subinterpreter.create() as si:
        interp = mod.Interpreter(si.id)
        assert interp.whence == "C-API" or sys.version_info < (3, 13)
        with pytest.raises(mod.InterpreterError):
            interp.close()
        assert si.id in [i.id for i in mod.list_all()]


# -- exec from a thread the interpreter started -----------------------------------------------


@both
def test_thread_started_inside_execs_into_its_interpreter(mod: Any) -> None:
    interp = _create(mod)
    go, out = mod.create_queue(), mod.create_queue()
    interp.prepare_main(go=go, out=out, name=mod.__name__)
    try:
        interp.exec(
            textwrap.dedent("""
            import importlib, threading
            I = importlib.import_module(name)
            def body():
                for _ in range(2):
                    go.get()
                    try:
                        I.get_current().exec("x = 42")
                        out.put(x)
                    except I.InterpreterError as exc:
                        out.put(type(exc).__name__)
            t = threading.Thread(target=body)
            t.start()
            """)
        )
        go.put(None)  # the exec that started it returned: nothing else runs there
        assert out.get(timeout=60) == 42
        # While another exec runs there (blocked joining it), it is refused.
        interp.exec("go.put(None); t.join()")
        assert out.get(timeout=60) == "InterpreterError"
    finally:
        interp.close()


# -- hash and equality across close() ----------------------------------------------------------


def _hash_and_equality_survive_close(create: Any) -> None:
    a, b = create(), create()
    keyed = {a: "a", b: "b"}
    hashes = hash(a), hash(b)
    a.close()
    b.close()
    assert (hash(a), hash(b)) == hashes
    assert a != b
    assert keyed[a] == "a"
    assert keyed[b] == "b"


def test_subinterpreter_hash_and_equality_survive_close() -> None:
    _hash_and_equality_survive_close(Subinterpreter.create)


@both
def test_interpreter_hash_and_equality_survive_close(mod: Any) -> None:
    _hash_and_equality_survive_close(mod.create)


# -- the warning at exit -----------------------------------------------------------------------


@by_name
def test_exit_with_interpreters_open_warns(name: str) -> None:
    ran = run_snippet(
        f"""
        import importlib
        interpreters = importlib.import_module({name!r})
        a = interpreters.create()
        b = interpreters.create()
        b.close()
        """
    )
    assert ran.stderr.splitlines() == [REMAINING], ran.detail()


def test_exit_without_open_interpreters_does_not_warn() -> None:
    ran = run_snippet(
        """
        from subinterp_rs import Subinterpreter, interpreters
        interpreters.create().close()
        Subinterpreter.create().close()
        """
    )
    assert ran.stderr == "", ran.detail()


@by_name
def test_exit_of_the_repl_with_interpreters_open_warns(name: str) -> None:
    proc = run_python(
        *("-i", "-q"),
        input=f"import importlib\ninterpreters = importlib.import_module({name!r})\n"
        "interp = interpreters.create()\n",
        timeout=120,
        env={"PYTHONSTARTUP": None, "TERM": "dumb", "PYTHON_BASIC_REPL": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert REMAINING in proc.stderr.splitlines(), proc.stderr


# -- the frames of an ExecutionFailed traceback -------------------------------------------------


def _frames(exc: BaseException) -> list[str]:
    """The functions the traceback passes through below the test's own frame."""
    return [f.name for f in traceback.extract_tb(exc.__traceback__)[1:]]


@both
def test_execution_failed_frames(mod: Any) -> None:
    interp = _create(mod)
    try:
        with pytest.raises(mod.ExecutionFailed) as info:
            interp.exec("raise ValueError('boom')")
        assert _frames(info.value) == ["exec"]
        with pytest.raises(mod.ExecutionFailed) as info:
            interp.call(sf.int_of, "x")
        assert _frames(info.value) == ["call", "_call"]
        assert "ValueError" in info.value.excinfo.errdisplay
        with pytest.raises(mod.NotShareableError) as ns:
            interp.call(sf.echo, sfid.Unrebuildable())
        assert _frames(ns.value) == ["call", "_call"]
    finally:
        interp.close()


# -- asyncio: map left with break --------------------------------------------------------------


def test_pool_map_left_with_break_drops_the_rest_while_referenced() -> None:
    queue = interpreters.create_queue()

    async def main() -> None:
        async with AsyncInterpreterPool(1, prewarm=True) as pool:
            got = []
            it = pool.map(sfid.record, [queue] * 50, range(50), [0.01] * 50)
            async for x in it:
                got.append(x)
                if len(got) == 3:
                    break
            # `it` is still referenced (not closed): the calls it did not start are dropped.
            assert await pool.run(sf.square, 2) == 4
            assert got == [0, 1, 2]
            ran = []
            while not queue.empty():
                ran.append(queue.get_nowait())
            assert ran == list(range(len(ran)))
            assert len(ran) <= 3 + 1, ran  # the one submitted ahead (a worker's) may run
            del it

    asyncio.run(main())


# -- typing: the annotations are typeshed's ---------------------------------------------------

SNIPPET = """
from {module} import interpreters

interp = interpreters.create()
interp.exec(3.5)
interp.exec("x = 1")
interp.exec(compile("x = 1", "<s>", "exec"))
q, r = interp.call(divmod, 7, 2)
n: str = interp.call(divmod, 7, 2)
interp.call(divmod, "x")
interp.call_in_thread(divmod, 7, 2).join()
interp.call_in_thread(divmod, 7)
interp.prepare_main({{"a": 1}}, b=2)
interp.close()
"""


def _mypy(tmp_path: Path, module: str, *options: str) -> list[str]:
    path = tmp_path / f"snippet_{module.replace('.', '_')}.py"
    path.write_text(SNIPPET.format(module=module))
    proc = run_python(
        *("-m", "mypy", "--strict", "--no-incremental", "--no-error-summary"),
        *("--cache-dir", str(tmp_path / "cache"), *options, str(path)),
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    # "file:line: error: message  [code]", without the file.
    return [line.split(":", 1)[1] for line in proc.stdout.splitlines() if ": error:" in line]


def test_annotations_match_typeshed(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    ours = _mypy(tmp_path, "subinterp_rs")
    assert any(line.startswith("5: error:") for line in ours), ours  # exec(3.5)
    assert {line.split(":", 1)[0] for line in ours} == {"5", "9", "10", "12"}, ours
    theirs = _mypy(tmp_path, "concurrent", "--python-version", "3.14")
    assert ours == theirs


# -- Ctrl-C during exec ------------------------------------------------------------------------


@by_name
def test_ctrl_c_during_exec_is_delivered_when_it_returns(name: str) -> None:
    ran = run_snippet(
        f"""
        import importlib, os, signal, threading
        interpreters = importlib.import_module({name!r})
        interp = interpreters.create()
        started = interpreters.create_queue()
        interp.prepare_main(started=started)
        def interrupt():
            started.get(timeout=60)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt).start()
        try:
            interp.exec("import time; started.put(1); time.sleep(2); done = True")
            for _ in range(10_000):   # 3.14+ delivers it at the next check after the return
                pass
        except KeyboardInterrupt:
            interp.exec("assert done")   # the code inside ran to its end
            print("KeyboardInterrupt after the exec")
        interp.close()
        """
    )
    assert ran.lines() == ["KeyboardInterrupt after the exec"], ran.detail()


# -- list_all() lists interpreters made outside the package ---------------------------------


def test_list_all_lists_interpreters_made_elsewhere() -> None:
    # 3.12's private module too (_xxsubinterpreters), as 3.13+'s _interpreters: all are listed.
    name = "_xxsubinterpreters" if sys.version_info < (3, 13) else "_interpreters"
    low = importlib.import_module(name)
    # 3.12: the InterpreterID objects keep theirs alive (dropping the last one destroys it).
    handles = [low.create() for _ in range(2)]
    made = {int(h) for h in handles}
    try:
        with Subinterpreter.create() as si:
            ours = {i.id for i in interpreters.list_all()}
            theirs = {int(i[0] if isinstance(i, tuple) else i) for i in low.list_all()}
            assert made | {si.id, interpreters.get_main().id} <= ours
            assert ours == theirs
    finally:
        for h in handles:
            low.destroy(h)
    assert not made & {i.id for i in interpreters.list_all()}


# -- the stdlib's exception classes (3.14+) -------------------------------------------------


@pytest.mark.skipif(STDLIB is None, reason="the stdlib's module: 3.14+")
def test_errors_are_the_stdlib_classes() -> None:
    import pickle

    import _interpreters

    assert STDLIB is not None
    for name in ("InterpreterError", "InterpreterNotFoundError", "NotShareableError"):
        assert getattr(interpreters, name) is getattr(STDLIB, name) is getattr(_interpreters, name)
    assert issubclass(interpreters.ExecutionFailed, _interpreters.InterpreterError)
    # The stdlib's low-level errors are caught as ours, ours as the stdlib's.
    with pytest.raises(interpreters.InterpreterError):
        _interpreters.destroy(0)
    with pytest.raises(_interpreters.InterpreterNotFoundError):
        interpreters.Interpreter(10**9)
    copy = pickle.loads(pickle.dumps(interpreters.NotShareableError("x")))
    assert type(copy) is interpreters.NotShareableError
    assert str(copy) == "x"


def test_queues_module_is_reachable_as_in_the_stdlib() -> None:
    # `from concurrent.interpreters import _queues` (CPython's own tests do it).
    assert interpreters._queues.create is interpreters.create_queue
    assert interpreters._queues.Queue is interpreters.Queue
