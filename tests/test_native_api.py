"""The shape the package keeps: one module calls ``_native``, by keyword; the native functions
bind their arguments like Python functions; creation runs in parallel where CPython allows it.
"""

from __future__ import annotations

import ast
import inspect
import marshal
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import subinterp_rs
from _helpers import join_all, run_snippet, run_threads, start_threads
from subinterp_rs import InterpreterConfig, InterpreterError, _native, _native_api, interpreters

PACKAGE = Path(subinterp_rs.__file__).resolve().parent
# For calls that break the stub on purpose.
_untyped: Any = _native


def _imports_native(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "_native" for a in node.names):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.endswith("._native") or a.name == "_native" for a in node.names
        ):
            return True
    return False


def test_only_the_native_api_module_imports_native() -> None:
    importers = sorted(p.name for p in PACKAGE.glob("*.py") if _imports_native(p))
    assert importers == ["_native_api.py"]


def test_native_api_calls_native_only_by_keyword() -> None:
    tree = ast.parse((PACKAGE / "_native_api.py").read_text(encoding="utf-8"))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "_native"
    ]
    assert len(calls) > 20
    positional = [ast.unparse(c) for c in calls if c.args]
    assert positional == []


def test_init_only_reexports() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds
    assigned = [
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    ]
    assert assigned == ["__all__"]


def test_native_functions_have_signatures() -> None:
    sig = inspect.signature(_native.call)
    assert list(sig.parameters) == ["id", "callable", "args", "kwargs", "closures"]
    assert sig.parameters["closures"].default is False
    assert str(inspect.signature(_native.destroy)) == "(id)"
    assert str(inspect.signature(_native.list_all)) == "()"


def test_native_functions_take_keywords_and_positions() -> None:
    iid = _native_api.create(InterpreterConfig(), _native_api.WHENCE_CAPI)
    try:
        assert _native.call(iid, divmod, (7, 2), None) == (3, 1)
        assert _native.call(id=iid, callable=divmod, args=(9, 2), kwargs=None) == (4, 1)
        assert _native.call(iid, divmod, kwargs=None, args=(5, 2), closures=True) == (2, 1)
        assert _native.is_running(id=iid) is False
    finally:
        _native.destroy(id=iid)
    assert iid not in [i for i, _ in _native.list_all()]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _untyped.destroy(), "destroy() missing required argument 'id' (pos 1)"),
        (lambda: _untyped.destroy(1, 2), "destroy() takes 1 positional argument but 2 were given"),
        (lambda: _untyped.destroy(x=1), "destroy() got an unexpected keyword argument 'x'"),
        (lambda: _untyped.destroy(1, id=1), "destroy() got multiple values for argument 'id'"),
        (lambda: _untyped.list_all(1), "list_all() takes 0 positional arguments but 1 was given"),
        (
            lambda: _untyped.call(1, len, (), None, False, 6),
            "call() takes from 4 to 5 positional arguments but 6 were given",
        ),
        (
            lambda: _untyped.call(1, len, (), closures=True),
            "call() missing required argument 'kwargs' (pos 4)",
        ),
        (lambda: _untyped.destroy(id="1"), "id must be an int, not str"),
    ],
)
def test_native_argument_errors(call: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        call()  # type: ignore[operator]
    assert str(info.value) == message


def _ids() -> set[int]:
    return {i for i, _ in _native_api.list_all()}


def test_create_runs_marshalled_setup_in_a_namespace_of_its_own() -> None:
    code = compile("import sys\nsys.set_up_by = 'setup'\nhere = 1", "<setup>", "exec")
    iid = _native_api.create(InterpreterConfig(), _native_api.WHENCE_CAPI, marshal.dumps(code))
    try:
        _native_api.exec(
            iid, "import sys; assert sys.set_up_by == 'setup'; assert 'here' not in dir()"
        )
    finally:
        _native_api.destroy(iid)


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        ("x = 1", TypeError, "setup must be bytes or None, not str"),
        (b"not marshal", InterpreterError, "the new interpreter's set-up failed: "),
        (marshal.dumps(1), InterpreterError, "set-up code is not a marshalled code object"),
        (
            marshal.dumps(compile("raise ValueError('no')", "<setup>", "exec")),
            InterpreterError,
            "the new interpreter's set-up failed: ValueError: no",
        ),
    ],
)
def test_create_with_a_bad_setup_raises_and_leaves_no_interpreter(
    setup: object, error: type[Exception], message: str
) -> None:
    before = _ids()
    with pytest.raises(error, match=re.escape(message)):
        _native_api.create(InterpreterConfig(), _native_api.WHENCE_CAPI, setup)  # type: ignore[arg-type]
    assert _ids() == before


def test_creates_in_parallel_threads_each_get_their_own_interpreter() -> None:
    # On 3.13+ creation runs outside every lock of ours; on 3.12 it is serialized. Either way
    # each thread gets a distinct, working interpreter, which closes from another thread.
    count = 4
    barrier = threading.Barrier(count)
    made: list[subinterp_rs.Subinterpreter] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            interp = subinterp_rs.Subinterpreter.create()
            made.append(interp)
            assert interp.call(pow, 2, interp.id) == 2**interp.id
        except BaseException as exc:
            errors.append(exc)

    run_threads(*[one] * count, timeout=120)
    ids = {interp.id for interp in made}
    try:
        assert errors == []
        assert len(ids) == count
        assert ids <= {i for i, _ in _native.list_all()}
        assert {_native.whence(i) for i in ids} == {_native.WHENCE_CAPI}
    finally:
        for interp in made:
            interp.close()
    assert not ids & {i for i, _ in _native.list_all()}


def test_exit_while_daemon_threads_create_in_parallel() -> None:
    # The exit hook refuses new creates before it waits for those in progress: daemon threads
    # creating and closing in a loop never keep it waiting, and the process exits cleanly.
    proc = run_snippet(
        """
        import threading, time
        from subinterp_rs import Subinterpreter, InterpreterError
        started = threading.Barrier(5)
        def churn():
            started.wait()
            while True:
                try:
                    with Subinterpreter.create() as si:
                        si.exec("x = 1")
                except InterpreterError:
                    pass  # refused at shutdown
        for _ in range(4):
            threading.Thread(target=churn, daemon=True).start()
        started.wait()
        time.sleep(0.5)
        print("bye")
        """,
        timeout=120,
    )
    assert proc.stdout == "bye\n"


def test_facade_create_and_list_race_in_threads() -> None:
    # interpreters.list_all() may see an interpreter another thread is still creating; the
    # facade's objects stay one per id and every created one closes.
    errors: list[BaseException] = []
    stop = threading.Event()

    def lister() -> None:
        while not stop.is_set():
            try:
                interpreters.list_all()
            except BaseException as exc:
                errors.append(exc)

    def creator() -> None:
        try:
            for _ in range(5):
                interp = interpreters.create()
                assert interpreters.Interpreter(interp.id) is interp
                interp.close()
        except BaseException as exc:
            errors.append(exc)

    listing = start_threads(lister)
    try:
        run_threads(*[creator] * 3, timeout=300)
    finally:
        stop.set()
        join_all(listing, 60)
    assert errors == []
