"""The PEP 734 facade ``subinterp_rs.interpreters``: its API.

A port of CPython's ``Lib/test/test_interpreters/test_api.py`` (3.14) to pytest, run against
our module on every supported Python, plus tests that run the stdlib's module (3.13's draft
``test.support.interpreters``, 3.14+'s ``concurrent.interpreters``) side by side with ours.
"""

import ast
import contextlib
import gc
import importlib
import math
import operator
import os
import pickle
import queue as queue_module
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from _helpers import (
    captured_thread_exceptions,
    clean_interpreters,  # noqa: F401  (fixture)
    interp_exists,
    pipe,
    run_output,
    run_python,
    run_threads,
    running_in_thread,
    stable_id,
    stdlib_interpreters,
    wait_for,
)
from subinterp_rs import Subinterpreter, interpreters
from subinterp_rs.interpreters import (
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
)

pytestmark = pytest.mark.usefixtures("clean_interpreters")

WHENCE_STR_UNKNOWN = "unknown"
WHENCE_STR_RUNTIME = "runtime init"
WHENCE_STR_LEGACY_CAPI = "legacy C-API"
WHENCE_STR_CAPI = "C-API"
WHENCE_STR_XI = "cross-interpreter C-API"
WHENCE_STR_STDLIB = "_interpreters module"

STDLIB_ALL_314 = [
    "get_current",
    "get_main",
    "create",
    "list_all",
    "is_shareable",
    "Interpreter",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ExecutionFailed",
    "NotShareableError",
    "create_queue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
]

_std = stdlib_interpreters()
# A module either way for the type checker: the tests that use it skip where it is None.
std = _std or types.ModuleType("no_stdlib_interpreters")
needs_stdlib = pytest.mark.skipif(_std is None, reason="no stdlib PEP 734 module (3.13+)")
needs_stdlib_314 = pytest.mark.skipif(
    _std is None or sys.version_info < (3, 14), reason="needs concurrent.interpreters (3.14+)"
)


# -- functions and classes that cross by name (this module is importable there) ----------------


def call_func_noop() -> None:
    pass


def call_func_ident(arg: object) -> object:
    return arg


def call_func_failure() -> None:
    raise Exception("spam!")


def call_func_return_shareable() -> tuple[int, None]:
    return (1, None)


def call_func_return_stateless_func() -> Callable[[object], object]:
    return lambda x: x


def call_func_return_pickleable() -> list[int]:
    return [1, 2, 3]


def call_func_return_closure() -> Callable[[], int]:
    x = 42
    return lambda: x


def call_func_return_lock() -> threading.Lock:
    return threading.Lock()


def call_func_return_local_class_instance() -> object:
    class Eggs:
        pass

    return Eggs()


def get_call_func_closure(value: object) -> Callable[[], object]:
    def call_func_closure() -> object:
        return value

    return call_func_closure


def call_func_exec_wrapper(
    script: str, ns: dict[str, object]
) -> tuple[None, dict[str, object], int]:
    res = exec(script, ns, ns)  # type: ignore[func-returns-value]  # (the stdlib test's check)
    return res, ns, id(ns)


def call_func_full_args(
    a: object,
    b: object,
    /,
    c: object,
    d: object,
    *args: object,
    e: object,
    f: object,
    **kwargs: object,
) -> tuple[object, ...]:
    return (a, b, c, d, e, f, args, kwargs)


def call_func_full_args_with_defaults(
    a: int = -1,
    b: int = -2,
    /,
    c: int = -3,
    d: int = -4,
    *args: object,
    e: int = -5,
    f: int = -6,
    **kwargs: object,
) -> tuple[object, ...]:
    return (a, b, c, d, e, f, args, kwargs)


def call_func_chained() -> None:
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError as exc:
        raise ValueError("boom") from exc


def call_func_pid_and_interp() -> tuple[int, int]:
    return os.getpid(), interpreters.get_current().id


class Spam:
    @staticmethod
    def noop() -> None:
        pass

    @classmethod
    def from_values(cls, *values: object) -> Self:
        return cls(values)

    def __init__(self, value: object) -> None:
        self.value = value

    def __call__(
        self, *args: object, **kwargs: object
    ) -> tuple[object, tuple[object, ...], dict[str, object]]:
        return (self.value, args, kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spam):
            return NotImplemented
        return self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def run(
        self, *args: object, **kwargs: object
    ) -> tuple[object, tuple[object, ...], dict[str, object]]:
        return (self.value, args, kwargs)


def call_func_complex(
    op: object,
    /,
    value: object = None,
    *args: object,
    exc: Exception | None = None,
    **kwargs: object,
) -> object:
    if exc is not None:
        raise exc
    if op == "":
        raise ValueError("missing op")
    elif op == "ident":
        if args or kwargs:
            raise Exception((args, kwargs))
        return value
    elif op == "full-ident":
        return (value, args, kwargs)
    elif op == "globals":
        if value is not None or args or kwargs:
            raise Exception((value, args, kwargs))
        return __name__
    elif op == "interpid":
        if value is not None or args or kwargs:
            raise Exception((value, args, kwargs))
        return interpreters.get_current().id
    elif op == "closure":
        if args or kwargs:
            raise Exception((args, kwargs))
        return get_call_func_closure(value)
    elif op == "custom":
        if args or kwargs:
            raise Exception((args, kwargs))
        return Spam(value)
    elif not isinstance(op, str):
        raise TypeError(op)
    else:
        raise NotImplementedError(op)


# -- module -------------------------------------------------------------------------------------


def test_all_names_exist() -> None:
    assert sorted(interpreters.__all__) == sorted(STDLIB_ALL_314)
    for name in interpreters.__all__:
        assert hasattr(interpreters, name), name


@needs_stdlib_314
def test_all_matches_stdlib() -> None:
    assert sorted(interpreters.__all__) == sorted(std.__all__)
    for name in std.__all__:
        assert callable(getattr(interpreters, name)), name


def test_queue_aliases() -> None:
    from subinterp_rs import _queues

    assert interpreters.create_queue is _queues.create
    assert interpreters.Queue is _queues.Queue
    assert interpreters.QueueEmpty is _queues.QueueEmpty
    assert interpreters.QueueFull is _queues.QueueFull
    for name in ("UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE", "QueueError"):
        assert getattr(interpreters, name) is getattr(_queues, name)
    assert interpreters.QueueNotFoundError is _queues.QueueNotFoundError
    assert interpreters.ItemInterpreterDestroyed is _queues.ItemInterpreterDestroyed


def test_exception_hierarchy() -> None:
    assert issubclass(InterpreterNotFoundError, InterpreterError)
    assert issubclass(ExecutionFailed, InterpreterError)
    assert issubclass(InterpreterError, Exception)
    assert issubclass(interpreters.QueueEmpty, interpreters.QueueError)
    assert issubclass(interpreters.QueueEmpty, queue_module.Empty)
    assert issubclass(interpreters.QueueFull, interpreters.QueueError)
    assert issubclass(interpreters.QueueFull, queue_module.Full)
    assert issubclass(interpreters.QueueNotFoundError, interpreters.QueueError)
    assert issubclass(interpreters.ItemInterpreterDestroyed, interpreters.QueueError)
    # The same classes as the low-level API's.
    import subinterp_rs

    assert subinterp_rs.ExecutionFailed is ExecutionFailed
    assert subinterp_rs.NotShareableError is NotShareableError


def _stdlib_queue_module() -> types.ModuleType:
    if sys.version_info >= (3, 14):
        return importlib.import_module("concurrent.interpreters._queues")
    return importlib.import_module("test.support.interpreters.queues")


@needs_stdlib
@pytest.mark.parametrize(
    "name",
    [
        "InterpreterError",
        "InterpreterNotFoundError",
        "ExecutionFailed",
        "NotShareableError",
        "QueueEmpty",
        "QueueFull",
        "QueueError",
        "QueueNotFoundError",
        "ItemInterpreterDestroyed",
    ],
)
def test_exception_bases_match_stdlib(name: str) -> None:
    # `except TypeError`, `except RuntimeError`, `except queue.Empty`... written for the
    # stdlib's exceptions must catch ours too.
    theirs = getattr(std, name, None) or getattr(_stdlib_queue_module(), name)
    ours = getattr(interpreters, name)
    builtin_bases = [
        base
        for base in theirs.__mro__
        if base.__module__ in ("builtins", "queue", "_queue") and base is not object
    ]
    missing = [base.__name__ for base in builtin_bases if not issubclass(ours, base)]
    assert not missing, f"{name} is not a subclass of {missing} (the stdlib's {name} is)"


# -- create() -----------------------------------------------------------------------------------


def main_value(interp: interpreters.Interpreter, expr: str) -> Any:
    """``expr`` evaluated in ``interp``'s ``__main__`` (by exec, not by call(eval))."""
    return ast.literal_eval(run_output(interp, f"print(repr({expr}))").strip())


def test_create_in_main() -> None:
    interp = interpreters.create()
    assert isinstance(interp, interpreters.Interpreter)
    assert interp in interpreters.list_all()
    assert interp.whence == WHENCE_STR_STDLIB
    assert not interp.is_running()
    assert interp.id > 0


def test_create_is_isolated() -> None:
    interp = interpreters.create()
    # Its own modules: a change there is not seen here, and the other way round.
    interp.exec("import sys; sys.spam_marker = 1")
    assert not hasattr(sys, "spam_marker")
    sys.eggs_marker = 1  # type: ignore[attr-defined]  # deliberately: a marker
    try:
        assert main_value(interp, "hasattr(__import__('sys'), 'eggs_marker')") is False
    finally:
        del sys.eggs_marker  # type: ignore[attr-defined]
    assert main_value(interp, "__import__('sys').spam_marker") == 1


def test_create_in_thread() -> None:
    interp = None
    done = threading.Event()

    def f() -> None:
        nonlocal interp
        interp = interpreters.create()
        done.set()

    t = threading.Thread(target=f)
    t.start()
    t.join()
    assert done.is_set()
    assert interp in interpreters.list_all()
    assert interp.call(divmod, 7, 2) == (3, 1)


def test_create_in_subinterpreter() -> None:
    before = interpreters.list_all()
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        interp = interpreters.create()
        print(interp.id)
        """,
    )
    interp2 = interpreters.Interpreter(int(out))
    assert interpreters.list_all() == [*before, interp, interp2]
    assert interp2.whence == WHENCE_STR_STDLIB
    assert interp2.call(divmod, 7, 2) == (3, 1)


def test_nested_interpreters_run_code() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        inner = interpreters.create()
        print(inner.call(divmod, 17, 5))
        inner.exec("from subinterp_rs import interpreters as i; innermost = i.create()")
        inner.exec("innermost.exec('x = 1'); assert innermost.call(divmod, 5, 5) == (1, 0)")
        print(len(interpreters.list_all()))
        print(interpreters.get_current().id != inner.id)
        inner.close()
        print(inner.id in [i.id for i in interpreters.list_all()])
        """,
    )
    before = len(interpreters.list_all())
    lines = out.splitlines()
    assert lines[0] == "(3, 2)"
    assert int(lines[1]) == before + 2  # inner and innermost
    assert lines[2:] == ["True", "False"]


def test_after_destroy_all() -> None:
    before = set(interpreters.list_all())
    interp_lst = [interpreters.create() for _ in range(3)]
    for interp in interp_lst:
        interp.close()
    interp = interpreters.create()
    assert set(interpreters.list_all()) == before | {interp}


def test_after_destroy_some() -> None:
    before = set(interpreters.list_all())
    interp1 = interpreters.create()
    interp2 = interpreters.create()
    interp3 = interpreters.create()
    interp1.close()
    interp2.close()
    interp = interpreters.create()
    assert set(interpreters.list_all()) == before | {interp3, interp}


# -- get_main(), get_current() ------------------------------------------------------------------


def test_get_main_id() -> None:
    main = interpreters.get_main()
    assert main.id == 0
    assert main.whence == WHENCE_STR_RUNTIME


def test_get_main_is_current_in_main() -> None:
    main = interpreters.get_main()
    current = interpreters.get_current()
    assert main is current


def test_get_main_idempotent() -> None:
    assert interpreters.get_main() is interpreters.get_main()


def test_get_current_subinterpreter() -> None:
    main = interpreters.get_main()
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        cur = interpreters.get_current()
        print(cur.id)
        print(cur.whence)
        print(interpreters.get_main().id)
        """,
    )
    curid, whence, mainid = out.splitlines()
    current = interpreters.Interpreter(int(curid))
    assert current == interp
    assert current != main
    assert whence == WHENCE_STR_STDLIB
    assert int(mainid) == main.id


def test_get_current_idempotent_in_subinterpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        cur = interpreters.get_current()
        print(id(cur))
        cur = interpreters.get_current()
        print(id(cur))
        """,
    )
    objid1, objid2 = (int(v) for v in out.splitlines())
    assert objid1 == objid2


def test_get_current_per_interpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        from subinterp_rs import interpreters
        print(id(interpreters.get_current()))
        """,
    )
    assert int(out) != id(interp)


# -- list_all() ---------------------------------------------------------------------------------


def test_list_all_initial() -> None:
    interps = interpreters.list_all()
    assert interps[0] is interpreters.get_main()
    assert all(isinstance(i, interpreters.Interpreter) for i in interps)


def test_list_all_after_creating() -> None:
    before = [i.id for i in interpreters.list_all()]
    first = interpreters.create()
    second = interpreters.create()
    ids = [interp.id for interp in interpreters.list_all()]
    assert ids == [*before, first.id, second.id]


def test_list_all_after_destroying() -> None:
    before = [i.id for i in interpreters.list_all()]
    first = interpreters.create()
    second = interpreters.create()
    first.close()
    ids = [interp.id for interp in interpreters.list_all()]
    assert ids == [*before, second.id]


def test_list_all_idempotent() -> None:
    before = interpreters.list_all()
    first = interpreters.create()
    second = interpreters.create()
    expected = [*before, first, second]
    actual = interpreters.list_all()
    assert actual == expected
    for interp1, interp2 in zip(actual, expected, strict=True):
        assert interp1 is interp2


def test_list_all_destroyed_by_gc() -> None:
    # gh-155997: the interpreter is destroyed (its last Interpreter object collected)
    # while list_all() runs.
    interp = interpreters.create()
    interpid = interp.id
    cycle: list[object] = [interp]
    cycle.append(cycle)
    gc.disable()
    try:
        del interp, cycle
    finally:
        gc.enable()
    old = gc.get_threshold()
    gc.set_threshold(1)
    try:
        ids = [i.id for i in interpreters.list_all()]
    finally:
        gc.set_threshold(*old)
    assert interpid not in ids  # gone while listed: skipped, as the stdlib's
    assert 0 in ids
    assert not interp_exists(interpid)


def test_list_all_created_with_capi() -> None:
    # (Other tests may leave disarmed C-API interpreters alive on purpose.)
    before = {i.id for i in interpreters.list_all() if i.whence == WHENCE_STR_CAPI}
    with Subinterpreter.create() as si:
        found = {i.id: i.whence for i in interpreters.list_all()}
        assert found[si.id] == WHENCE_STR_CAPI
        assert found[0] == WHENCE_STR_RUNTIME
        sid = si.id
    assert si.id == -1
    after = {i.id for i in interpreters.list_all() if i.whence == WHENCE_STR_CAPI}
    assert sid not in after
    assert after == before


# -- Interpreter objects ------------------------------------------------------------------------


def test_init_int() -> None:
    interpid = interpreters.get_current().id
    interp = interpreters.Interpreter(interpid)
    assert interp.id == interpid


@pytest.mark.parametrize("bad", ["0", 0.0, object(), None, "", b"0"])
def test_init_unsupported(bad: object) -> None:
    with pytest.raises(TypeError, match="id must be an int"):
        interpreters.Interpreter(bad)  # type: ignore[arg-type]  # deliberately not an int


def test_init_idempotent() -> None:
    main = interpreters.get_main()
    assert interpreters.Interpreter(main.id) is main
    interp = interpreters.create()
    assert interpreters.Interpreter(interp.id) is interp


def test_init_does_not_exist() -> None:
    with pytest.raises(InterpreterNotFoundError):
        interpreters.Interpreter(1_000_000)


def test_init_bad_id() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        interpreters.Interpreter(-1)
    with pytest.raises(OverflowError):
        interpreters.Interpreter(2**70)


def test_init_after_close() -> None:
    interp = interpreters.create()
    interpid = interp.id
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interpreters.Interpreter(interpid)


def test_id_type() -> None:
    main = interpreters.get_main()
    current = interpreters.get_current()
    interp = interpreters.create()
    assert type(main.id) is int
    assert type(current.id) is int
    assert type(interp.id) is int
    assert type(interpreters.Interpreter(False).id) is int


def test_id_readonly() -> None:
    interp = interpreters.create()
    with pytest.raises(AttributeError):
        interp.id = 1_000_000  # type: ignore[misc]  # deliberately: read-only
    assert interp.id != 1_000_000


def test_whence() -> None:
    main = interpreters.get_main()
    interp = interpreters.create()
    assert main.whence == WHENCE_STR_RUNTIME
    assert interp.whence == WHENCE_STR_STDLIB
    for value in [None, WHENCE_STR_UNKNOWN, WHENCE_STR_RUNTIME, WHENCE_STR_STDLIB]:
        with pytest.raises(AttributeError):
            interp.whence = value  # type: ignore[misc, assignment]  # deliberately: read-only
        with pytest.raises(AttributeError):
            main.whence = value  # type: ignore[misc, assignment]
    assert interp.whence == WHENCE_STR_STDLIB


def test_whence_created_with_capi() -> None:
    with Subinterpreter.create() as si:
        interp = interpreters.Interpreter(si.id)
        assert interp.whence == WHENCE_STR_CAPI
        out = run_output(
            si,
            """
            from subinterp_rs import interpreters
            print(interpreters.get_current().whence)
            """,
        )
        assert out.strip() == WHENCE_STR_CAPI


def test_whence_table() -> None:
    from subinterp_rs import _native

    assert interpreters.Interpreter._WHENCE_TO_STR == {
        _native.WHENCE_UNKNOWN: WHENCE_STR_UNKNOWN,
        _native.WHENCE_RUNTIME: WHENCE_STR_RUNTIME,
        _native.WHENCE_LEGACY_CAPI: WHENCE_STR_LEGACY_CAPI,
        _native.WHENCE_CAPI: WHENCE_STR_CAPI,
        _native.WHENCE_XI: WHENCE_STR_XI,
        _native.WHENCE_STDLIB: WHENCE_STR_STDLIB,
    }


def test_hashable() -> None:
    interp = interpreters.create()
    assert hash(interp) == hash(interp.id)
    assert {interp: 1}[interpreters.Interpreter(interp.id)] == 1


def test_equality() -> None:
    interp1 = interpreters.create()
    interp2 = interpreters.create()
    assert interp1 == interp1
    assert interp1 != interp2


def test_repr() -> None:
    interp = interpreters.create()
    assert repr(interp) == f"Interpreter({interp.id})"
    assert repr(interpreters.get_main()) == "Interpreter(0)"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle(protocol: int) -> None:
    interp = interpreters.create()
    data = pickle.dumps(interp, protocol)
    unpickled = pickle.loads(data)
    assert unpickled == interp
    assert unpickled is interp


def test_crosses_to_another_interpreter_and_back() -> None:
    interp = interpreters.create()
    other = interpreters.create()
    assert interp.call(call_func_ident, other) is other
    main = interpreters.get_main()
    assert interp.call(call_func_ident, main) is main
    # In there it is an Interpreter of that interpreter, usable as such.
    out = run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        other = interpreters.Interpreter({other.id})
        print(other.call(divmod, 9, 4), other.whence)
        """,
    )
    assert out.strip() == "(2, 1) _interpreters module"


# -- Interpreter.is_running() -------------------------------------------------------------------


def test_is_running_main() -> None:
    assert interpreters.get_main().is_running()


def test_is_running_subinterpreter() -> None:
    interp = interpreters.create()
    assert not interp.is_running()
    with running_in_thread(interp):
        pass
    assert not interp.is_running()


def test_is_running_finished() -> None:
    with pipe() as (r, w):
        interp = interpreters.create()
        interp.exec(f"import os; os.write({w}, b'x')")
        assert not interp.is_running()
        assert os.read(r, 1) == b"x"


def test_is_running_from_subinterpreter() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        print(interpreters.Interpreter({interp.id}).is_running())
        print(interpreters.get_main().is_running())
        """,
    )
    assert out.split() == ["True", "True"]


def test_is_running_already_destroyed() -> None:
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.is_running()


def start_background_thread(
    interp: interpreters.Interpreter, r_thread: int, w_interp: int, then: str = "pass"
) -> None:
    """Start ``t`` in ``interp``: a thread that waits for ``b'D'`` on ``r_thread``, then writes
    ``b'F'`` to ``w_interp``; then run ``then`` (one line) in the same ``exec``."""
    interp.exec(
        f"""if True:
        import os
        import threading

        def task():
            v = os.read({r_thread}, 1)
            assert v == b'D'
            os.write({w_interp}, b'F')
        t = threading.Thread(target=task)
        t.start()
        {then}
        """
    )


def test_is_running_with_only_background_threads() -> None:
    with pipe() as (r_interp, w_interp), pipe() as (r_thread, w_thread):
        interp = interpreters.create()
        start_background_thread(interp, r_thread, w_interp)
        assert not interp.is_running()
        os.write(w_thread, b"D")
        interp.exec("t.join()")
        assert os.read(r_interp, 1) == b"F"


# -- Interpreter.close() ------------------------------------------------------------------------


def test_close_basic() -> None:
    before = set(interpreters.list_all())
    interp1 = interpreters.create()
    interp2 = interpreters.create()
    interp3 = interpreters.create()
    assert set(interpreters.list_all()) == before | {interp1, interp2, interp3}
    interp2.close()
    assert set(interpreters.list_all()) == before | {interp1, interp3}


def test_close_all() -> None:
    before = set(interpreters.list_all())
    interps = {interpreters.create() for _ in range(3)}
    assert set(interpreters.list_all()) == before | interps
    for interp in interps:
        interp.close()
    assert set(interpreters.list_all()) == before


def test_close_main() -> None:
    main = interpreters.get_main()
    with pytest.raises(InterpreterError):
        main.close()
    with pytest.raises(InterpreterError):
        run_threads(main.close)  # from another thread too
    assert main.is_running()


def test_close_already_destroyed() -> None:
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.close()


def test_close_from_current() -> None:
    before = set(interpreters.list_all())
    interp = interpreters.create()
    out = run_output(
        interp,
        f"""
        from subinterp_rs import interpreters
        interp = interpreters.Interpreter({interp.id})
        try:
            interp.close()
        except interpreters.InterpreterError:
            print('failed')
        """,
    )
    assert out.strip() == "failed"
    assert set(interpreters.list_all()) == before | {interp}
    assert interp.call(divmod, 1, 1) == (1, 0)


def test_close_from_sibling() -> None:
    before = set(interpreters.list_all())
    interp1 = interpreters.create()
    interp2 = interpreters.create()
    assert set(interpreters.list_all()) == before | {interp1, interp2}
    interp1.exec(
        textwrap.dedent(
            f"""
            from subinterp_rs import interpreters
            interp2 = interpreters.Interpreter({interp2.id})
            interp2.close()
            interp3 = interpreters.create()
            interp3.close()
            """
        )
    )
    assert set(interpreters.list_all()) == before | {interp1}


def test_close_from_other_thread() -> None:
    interp = interpreters.create()
    run_threads(interp.close)  # raises here what close() raised there
    assert not interp_exists(interp.id)


def test_close_created_with_capi() -> None:
    with Subinterpreter.create() as si:
        interp = interpreters.Interpreter(si.id)
        with pytest.raises(InterpreterError, match="unrecognized"):
            interp.close()
        assert interp_exists(si.id)
        assert si.call(divmod, 5, 2) == (2, 1)


def test_object_gone_destroys_interpreter() -> None:
    # Like the stdlib: the last Interpreter object of an interpreter that create() made
    # destroys it.
    interp = interpreters.create()
    interpid = interp.id
    del interp
    gc.collect()
    assert not interp_exists(interpid)


def test_object_gone_keeps_capi_interpreter() -> None:
    with Subinterpreter.create() as si:
        interp = interpreters.Interpreter(si.id)
        del interp
        gc.collect()
        assert interp_exists(si.id)


# -- Interpreter.prepare_main() -----------------------------------------------------------------


def test_prepare_main_empty() -> None:
    interp = interpreters.create()
    with pytest.raises(ValueError):
        interp.prepare_main()
    with pytest.raises(ValueError):
        interp.prepare_main({})


def test_prepare_main_dict() -> None:
    interp = interpreters.create()
    interp.prepare_main({"spam": 42, "eggs": "ham"})
    assert run_output(interp, "print(spam, eggs)").strip() == "42 ham"


def test_prepare_main_tuple() -> None:
    interp = interpreters.create()
    # Not in typeshed's annotation (a Mapping), but the stdlib takes it (dict(ns)).
    interp.prepare_main((("spam", 42), ("eggs", "ham")))  # type: ignore[arg-type]
    assert run_output(interp, "print(spam, eggs)").strip() == "42 ham"


def test_prepare_main_kwargs() -> None:
    interp = interpreters.create()
    interp.prepare_main(spam=42, eggs="ham")
    assert run_output(interp, "print(spam, eggs)").strip() == "42 ham"


def test_prepare_main_dict_and_kwargs() -> None:
    interp = interpreters.create()
    interp.prepare_main({"spam": 42, "eggs": "ham"}, foo="bar")
    assert run_output(interp, "print(spam, eggs, foo)").strip() == "42 ham bar"


def test_prepare_main_ns_positional_only() -> None:
    interp = interpreters.create()
    interp.prepare_main(ns=1)  # "ns" is a name to bind, not the namespace
    interp.exec("assert ns == 1")


def test_prepare_main_shareable_values() -> None:
    values = {
        "none": None,
        "true": True,
        "small": -7,
        "big": 2**100,
        "flt": 1.5,
        "text": "spam ✓ \x00 eggs",
        "data": b"\x00\xff spam",
        "tup": (1, ("spam", b"eggs"), None, 2.5),
        "empty": (),
    }
    interp = interpreters.create()
    interp.prepare_main(values)
    for name, value in values.items():
        interp.exec(f"assert {name} == {value!r}, {name}")
        interp.exec(f"assert type({name}).__name__ == {type(value).__name__!r}, type({name})")


def test_prepare_main_not_shareable() -> None:
    interp = interpreters.create()
    with pytest.raises(NotShareableError):
        interp.prepare_main(spam={"spam": "eggs", "foo": "bar"})
    with pytest.raises(NotShareableError):
        interp.prepare_main(foo="bar", lock=threading.Lock())
    # Nothing was bound.
    with pytest.raises(ExecutionFailed):
        interp.exec("print(foo)")
    with pytest.raises(ExecutionFailed):
        interp.exec("print(spam)")


def test_prepare_main_bad_names() -> None:
    interp = interpreters.create()
    with pytest.raises(ValueError):
        # GH-127165: embedded NUL characters broke the lookup
        interp.prepare_main({"\x00": 1})
    with pytest.raises(TypeError):
        interp.prepare_main({1: 2})  # type: ignore[dict-item]  # deliberately: not str keys
    with pytest.raises(TypeError):
        interp.prepare_main(42)  # type: ignore[arg-type]  # deliberately: not a mapping
    with pytest.raises(ExecutionFailed):
        interp.exec("print(spam)")


def test_prepare_main_running() -> None:
    interp = interpreters.create()
    interp.prepare_main({"spam": True})
    with running_in_thread(interp), pytest.raises(InterpreterError, match="running"):
        interp.prepare_main({"spam": False})
    interp.exec("assert spam is True")


def test_prepare_main_created_with_capi() -> None:
    with Subinterpreter.create() as si:
        interp = interpreters.Interpreter(si.id)
        with pytest.raises(InterpreterError, match="unrecognized"):
            interp.prepare_main({"spam": True})
        with pytest.raises(ExecutionFailed, match="NameError"):
            si.exec("assert spam is True")


def test_prepare_main_closed() -> None:
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.prepare_main(spam=1)


# -- Interpreter.exec() -------------------------------------------------------------------------


def test_exec_success() -> None:
    interp = interpreters.create()
    assert run_output(interp, 'print("it worked!", end="")') == "it worked!"


def test_exec_returns_none() -> None:
    interp = interpreters.create()
    assert interp.exec("x = 1") is None  # type: ignore[func-returns-value]  # what is checked


def test_exec_runs_in___main__() -> None:
    interp = interpreters.create()
    interp.exec("spam = 42")
    interp.exec("assert spam == 42")
    interp.exec("import sys; assert __name__ == '__main__'")
    interp.exec("assert sys.modules['__main__'].spam == 42")
    assert main_value(interp, "spam") == 42


def test_exec_failure() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("raise Exception('uh-oh!')")
    excinfo = info.value.excinfo
    assert excinfo.type.__name__ == "Exception"
    assert excinfo.type.__qualname__ == "Exception"
    assert excinfo.type.__module__ == "builtins"
    assert excinfo.msg == "uh-oh!"
    assert excinfo.formatted == "Exception: uh-oh!"
    assert "Traceback (most recent call last):" in excinfo.errdisplay
    assert excinfo.errdisplay.rstrip().endswith("Exception: uh-oh!")
    text = str(info.value)
    assert text.startswith("Exception: uh-oh!")
    assert "Uncaught in the interpreter:" in text
    assert excinfo.errdisplay in text


def test_exec_failure_custom_exception_type() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("class SpamError(Exception):\n    pass\nraise SpamError('eggs')\n")
    excinfo = info.value.excinfo
    assert excinfo.type.__name__ == "SpamError"
    assert excinfo.type.__module__ == "__main__"
    assert excinfo.msg == "eggs"


def test_exec_exception_chain_in_excinfo() -> None:
    interp = interpreters.create()
    script = textwrap.dedent(
        """
        try:
            1 / 0
        except ZeroDivisionError as exc:
            raise ValueError("boom") from exc
        """
    )
    with pytest.raises(ExecutionFailed) as info:
        interp.exec(script)
    excinfo = info.value.excinfo
    assert excinfo.type.__name__ == "ValueError"
    assert excinfo.msg == "boom"
    assert excinfo.formatted.strip().endswith("ValueError: boom")
    display = excinfo.errdisplay
    assert "ZeroDivisionError: division by zero" in display
    assert "The above exception was the direct cause of the following exception:" in display
    assert display.index("ZeroDivisionError") < display.index("ValueError: boom")
    assert "ZeroDivisionError" in str(info.value)


def test_exec_exception_context_in_excinfo() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("try:\n    {}['k']\nexcept KeyError:\n    raise RuntimeError('during')\n")
    display = info.value.excinfo.errdisplay
    assert "KeyError: 'k'" in display
    assert "During handling of the above exception, another exception occurred:" in display
    assert "RuntimeError: during" in display


def test_exec_excinfo_pickles() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("raise KeyError('x')")
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is ExecutionFailed
    assert clone.excinfo.type.__name__ == "KeyError"
    assert clone.excinfo.msg == info.value.excinfo.msg
    assert str(clone) == str(info.value)


@pytest.mark.parametrize(
    ("script", "typename"),
    [
        ("raise SystemExit(3)", "SystemExit"),
        ("import sys; sys.exit()", "SystemExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
)
def test_exec_base_exceptions_do_not_escape(script: str, typename: str) -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec(script)
    assert info.value.excinfo.type.__name__ == typename
    # The interpreter (and this process) carry on.
    assert interp.call(divmod, 3, 2) == (1, 1)


def test_exec_display_preserved_exception(tmp_path: Path) -> None:
    modfile = tmp_path / "spam.py"
    modfile.write_text(
        textwrap.dedent(
            """
            def ham():
                raise RuntimeError('uh-oh!')

            def eggs():
                ham()
            """
        )
    )
    scriptfile = tmp_path / "script.py"
    scriptfile.write_text(
        textwrap.dedent(
            """
            from subinterp_rs import interpreters

            def script():
                import spam
                spam.eggs()

            interp = interpreters.create()
            try:
                interp.exec(script)
            finally:
                interp.close()
            """
        )
    )
    proc = run_python(str(scriptfile), cwd=str(tmp_path), rc=1, check=True)
    stderr = proc.stderr
    assert proc.stdout == ""
    assert "ExecutionFailed: RuntimeError: uh-oh!" in stderr
    assert "Uncaught in the interpreter:" in stderr
    uncaught = stderr.split("Uncaught in the interpreter:", 1)[1]
    assert f'File "{scriptfile}", line 6, in script' in uncaught
    assert f'File "{modfile}", line 6, in eggs' in uncaught
    assert f'File "{modfile}", line 3, in ham' in uncaught
    assert "raise RuntimeError('uh-oh!')" in uncaught
    assert uncaught.rstrip().endswith("RuntimeError: uh-oh!")


def test_exec_in_thread() -> None:
    interp = interpreters.create()
    out = []

    def f() -> None:
        out.append(run_output(interp, 'print("it worked!", end="")'))

    t = threading.Thread(target=f)
    t.start()
    t.join()
    assert out == ["it worked!"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_exec_fork_refused() -> None:
    interp = interpreters.create()
    out = run_output(
        interp,
        """
        import os
        try:
            os.fork()
        except RuntimeError as exc:
            print('RuntimeError', exc)
        else:
            print('forked')
        """,
    )
    assert out.startswith("RuntimeError")


@pytest.mark.parametrize("bad", [10, None, print, object(), str, ["x = 1"]])
def test_exec_bad_script(bad: object) -> None:
    interp = interpreters.create()
    with pytest.raises(TypeError):
        interp.exec(bad)  # type: ignore[arg-type]  # deliberately: not a script


def test_exec_bytes_for_script() -> None:
    with pipe() as (r, w):
        interp = interpreters.create()
        # Not in typeshed's annotation, but the stdlib runs bytes too.
        interp.exec(f"import os; os.write({w}, b'R')".encode())  # type: ignore[arg-type]
        assert os.read(r, 1) == b"R"
        interp.exec(bytearray(f"import os; os.write({w}, b'S')".encode()))  # type: ignore[arg-type]
        assert os.read(r, 1) == b"S"


def test_exec_syntax_error_raised_here() -> None:
    interp = interpreters.create()
    with pytest.raises(SyntaxError):
        interp.exec("def f(:")
    with pytest.raises((SyntaxError, ValueError)):
        interp.exec("a\0b")
    assert interp.call(divmod, 1, 1) == (1, 0)


def test_exec_does_not_inherit_future_flags() -> None:
    # The facade (and this module) may use `from __future__ import annotations`; the
    # script must be compiled without it, as the stdlib does.
    interp = interpreters.create()
    interp.exec(
        "def f(x: int) -> None: pass\n"
        "ann = {k: type(v).__name__ for k, v in f.__annotations__.items()}"
    )
    assert main_value(interp, "ann") == {"x": "type", "return": "NoneType"}


def test_exec_keeps_asserts() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed, match="AssertionError"):
        interp.exec("assert False, 'kept'")


def test_exec_with_background_threads_still_running() -> None:
    with pipe() as (r_interp, w_interp), pipe() as (r_thread, w_thread):
        interp = interpreters.create()
        start_background_thread(interp, r_thread, w_interp, then=f"os.write({w_interp}, b'R')")
        interp.exec(f"os.write({w_interp}, b'R')")
        os.write(w_thread, b"D")
        interp.exec("t.join()")
        assert os.read(r_interp, 1) == b"R"
        assert os.read(r_interp, 1) == b"R"
        assert os.read(r_interp, 1) == b"F"


def test_exec_already_running() -> None:
    interp = interpreters.create()
    with running_in_thread(interp):
        with pytest.raises(InterpreterError, match="running"):
            interp.exec("x = 1")
        with pytest.raises(InterpreterError, match="running"):
            interp.call(divmod, 1, 2)
    interp.exec("x = 2")
    assert main_value(interp, "x") == 2


def test_exec_created_with_capi() -> None:
    with Subinterpreter.create() as si:
        interp = interpreters.Interpreter(si.id)
        with pytest.raises(InterpreterError, match="unrecognized"):
            interp.exec('raise Exception("it worked!")')
        with pytest.raises(InterpreterError, match="unrecognized"):
            interp.call(divmod, 1, 2)


def test_exec_list_comprehension() -> None:
    # gh-135450: list comprehensions caused an assertion failure
    with pipe() as (r, w):
        interp = interpreters.create()
        interp.exec(
            f"""if True:
            import os
            comp = [str(i) for i in range(10)]
            os.write({w}, ''.join(comp).encode())
            """
        )
        assert os.read(r, 10).decode() == "0123456789"
        interp.close()


# Globals that the functions below set in the __main__ they run in (declared, not bound).
from_script: str
cell_result: int


def script_func_sets_globals() -> None:
    import os as os_alias  # a local of the function, not a global of __main__

    global from_script
    from_script = os_alias.sep


def script_func_raises() -> None:
    raise LookupError("from a function")


def script_func_with_args(a: object) -> None:
    pass


def script_func_with_kwonly(*, a: int = 1) -> None:
    pass


def script_func_varargs(*args: object) -> None:
    pass


def script_func_returns() -> int:
    return 42


def script_func_generator() -> Iterator[int]:
    yield 1


async def script_func_coroutine() -> None:
    pass


def script_func_returns_none_explicitly() -> None:
    if __name__:
        return
    return None


def script_func_uses_cell() -> None:
    x = [1, 2, 3]

    def inner() -> int:
        return len(x)

    global cell_result
    cell_result = inner()


def _make_closure() -> Callable[[], None]:
    y = 3

    def script_closure() -> None:
        print(y)

    return script_closure


def test_exec_function_body_runs_in___main__() -> None:
    interp = interpreters.create()
    interp.exec(script_func_sets_globals)
    assert main_value(interp, "from_script") == os.sep
    assert main_value(interp, "'os_alias' in globals()") is False
    interp.exec(script_func_returns_none_explicitly)
    interp.exec(script_func_uses_cell)
    assert main_value(interp, "cell_result") == 3


def test_exec_function_failure() -> None:
    interp = interpreters.create()
    with pytest.raises(ExecutionFailed) as info:
        interp.exec(script_func_raises)
    assert info.value.excinfo.type.__name__ == "LookupError"
    assert "script_func_raises" in info.value.excinfo.errdisplay


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (script_func_with_args, "code with args not supported"),
        (script_func_with_kwonly, "code with args not supported"),
        (script_func_varargs, "code with args not supported"),
        (script_func_returns, "code that returns a value is not a script"),
        (lambda: 1, "code that returns a value is not a script"),
        (script_func_generator, "code that returns a value is not a script"),
        (script_func_coroutine, "code that returns a value is not a script"),
        (_make_closure(), "closures not supported"),
    ],
)
def test_exec_function_not_a_script(func: types.FunctionType, message: str) -> None:
    interp = interpreters.create()
    with pytest.raises(ValueError, match=message):
        interp.exec(func)
    with pytest.raises(ValueError, match=message):
        interp.exec(func.__code__)


def test_exec_code_object() -> None:
    interp = interpreters.create()
    interp.exec(compile("spam = 6 * 7", "<spam>", "exec"))
    assert main_value(interp, "spam") == 42
    interp.exec(script_func_sets_globals.__code__)
    assert main_value(interp, "from_script") == os.sep
    with pytest.raises(ValueError, match="returns a value"):
        interp.exec(compile("1 + 1", "<eval>", "eval"))


def test_exec_closed() -> None:
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.exec("x = 1")


# -- Interpreter.call() -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_interp() -> Iterator[interpreters.Interpreter]:
    """One interpreter for the calls that leave no state behind (it imports this module once,
    instead of once per test)."""
    interp = interpreters.create()
    yield interp
    with contextlib.suppress(InterpreterError):
        interp.close()


def test_call_stateless_funcs(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert interp.call(call_func_noop) is None
    assert interp.call(call_func_return_shareable) == (1, None)
    func = interp.call(call_func_return_stateless_func)
    assert callable(func)
    assert func(5) == 5
    assert interp.call(call_func_return_pickleable) == [1, 2, 3]


def test_call_returns_closure(shared_interp: interpreters.Interpreter) -> None:
    # Like the stdlib: a closure cannot cross (Subinterpreter.call() of the low-level API
    # sends closures by value; the PEP 734 facade does what concurrent.interpreters does).
    interp = shared_interp
    with pytest.raises(NotShareableError):
        interp.call(call_func_return_closure)
    assert interp.call(divmod, 4, 3) == (1, 1)


def test_call_returns_unpickleable(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    with pytest.raises(NotShareableError):
        interp.call(call_func_return_lock)
    with pytest.raises(NotShareableError):
        interp.call(call_func_return_local_class_instance)
    assert interp.call(divmod, 4, 3) == (1, 1)


@pytest.mark.parametrize(
    "arg",
    [None, 10, -(2**62), "spam!", "", b"spam!", b"", (1, 2, "spam!"), (), True, False, 1.25],
    ids=stable_id,
)
def test_call_returns_shareable_arg(arg: object, shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert interpreters.is_shareable(arg)
    res = interp.call(call_func_ident, arg)
    assert res == arg
    assert type(res) is type(arg)


def test_call_returns_memoryview_arg(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    res = interp.call(call_func_ident, memoryview(b"spam!"))
    assert isinstance(res, memoryview)
    assert bytes(res) == b"spam!"


PICKLEABLE_ARGS = [
    Ellipsis,
    NotImplemented,
    2**1000,
    [1, 2, 3],
    {"a": 1, "b": 2},
    {1, 2},
    frozenset({3}),
    types.SimpleNamespace(x=42),
    object,
    type,
    Exception,
    ModuleNotFoundError,
    len,
    sys.exit,
    math.factorial,
    Spam,
    Spam("ham"),
    Spam.noop,
    call_func_noop,
    float("inf"),
    complex(1, 2),
    bytearray(b"xyz"),
    range(3),
]


@pytest.mark.parametrize("arg", PICKLEABLE_ARGS, ids=stable_id)
def test_call_returns_pickleable_arg(arg: object, shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    res = interp.call(call_func_ident, arg)
    assert res == arg


def test_call_returns_pickleable_special_args(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert type(interp.call(call_func_ident, object())) is object
    for exc in (Exception("uh-oh!"), ModuleNotFoundError("mymodule")):
        res = interp.call(call_func_ident, exc)
        assert type(res) is type(exc)
        assert res.args == exc.args


@pytest.mark.parametrize(
    "arg",
    [types.MappingProxyType({}), threading.Lock(), (x for x in range(0))],
    ids=["mappingproxy", "lock", "generator"],
)
def test_call_unpickleable_arg(arg: object, shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert not interpreters.is_shareable(arg)
    with pytest.raises(NotShareableError):
        interp.call(call_func_ident, arg)
    assert interp.call(divmod, 9, 2) == (4, 1)


def test_call_full_args(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    res = interp.call(call_func_full_args, 1, 2, 3, 4, "?", e=5, f=6, g=7, h=8)
    assert res == (1, 2, 3, 4, 5, 6, ("?",), {"g": 7, "h": 8})


def test_call_full_defaults(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    res = interp.call(call_func_full_args_with_defaults, g=8, h=9)
    assert res == (-1, -2, -3, -4, -5, -6, (), {"g": 8, "h": 9})


def test_call_kwargs_named_like_parameters(shared_interp: interpreters.Interpreter) -> None:
    # "callable" and "self" are positional-only in call(), so they can be kwargs.
    interp = shared_interp
    res = interp.call(call_func_full_args, 1, 2, 3, 4, e=5, f=6, callable=7, self=8)
    assert res == (1, 2, 3, 4, 5, 6, (), {"callable": 7, "self": 8})


def test_call_modified_arg(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    script = "a = 7\nb = 2\nc = a ** b\n"
    ns: dict[str, object] = {}
    obj, resns, resid = interp.call(call_func_exec_wrapper, script, ns)
    del resns["__builtins__"]
    assert obj is None
    assert ns == {}
    assert resns == {"a": 7, "b": 2, "c": 49}
    assert resid != id(ns)
    assert resid != id(resns)


def test_call_builtins(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert interp.call(divmod, 17, 5) == (3, 2)
    assert interp.call(len, "spam") == 4
    assert interp.call(sorted, (3, 1, 2)) == [1, 2, 3]
    assert interp.call(max, 1, 5, 2) == 5
    assert interp.call(int, "ff", base=16) == 255
    assert interp.call(str.upper, "spam") == "SPAM"


def test_call_module_functions(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    assert interp.call(math.factorial, 20) == math.factorial(20)
    assert interp.call(operator.add, 2, 3) == 5
    assert interp.call(os.getpid) == os.getpid()
    assert interp.call(textwrap.dedent, "  x\n  y") == "x\ny"
    assert interp.call(os.path.join, "a", "b") == os.path.join("a", "b")


def test_call_lambdas_and_closures(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    # Stateless lambdas and nested functions cross by value, as in the stdlib.
    assert interp.call(lambda a, b: a * b, 6, 7) == 42
    assert interp.call(lambda: len("spam")) == 4

    def local_function(n: int) -> list[int]:
        return [i * 10 for i in range(n)]

    assert interp.call(local_function, 3) == [0, 10, 20]
    # Closures do not (NotShareableError, like the stdlib), and nothing is left behind.
    k = 10
    with pytest.raises(NotShareableError):
        interp.call(lambda x: x + k, 1)
    with pytest.raises(NotShareableError):
        interp.call(get_call_func_closure("closed over"))
    with pytest.raises(NotShareableError):
        interp.call(get_call_func_closure, 42)  # returns a closure
    assert interp.call(divmod, 7, 7) == (1, 0)


def test_call_closures_with_low_level_api() -> None:
    # The low-level Subinterpreter.call() does send closures by value.
    with Subinterpreter.create() as si:
        k = 10
        assert si.call(lambda x: x + k, 1) == 11
        assert si.call(get_call_func_closure("closed over")) == "closed over"


def test_call_function_defined_in_test_module() -> None:
    interp = interpreters.create()
    assert interp.call(call_func_complex, "globals") == __name__
    assert interp.call(call_func_complex, "interpid") == interp.id
    pid, interpid = interp.call(call_func_pid_and_interp)
    assert pid == os.getpid()
    assert interpid == interp.id


def test_call_raises(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    with pytest.raises(ExecutionFailed) as info:
        interp.call(call_func_failure)
    assert info.value.excinfo.type.__name__ == "Exception"
    assert info.value.excinfo.msg == "spam!"
    with pytest.raises(ExecutionFailed) as info:
        interp.call(call_func_complex, "???", exc=ValueError("spam"))
    assert info.value.excinfo.type.__name__ == "ValueError"
    with pytest.raises(ExecutionFailed) as info:
        interp.call(divmod, 1, 0)
    assert info.value.excinfo.type.__name__ == "ZeroDivisionError"
    assert info.value.excinfo.formatted.startswith("ZeroDivisionError")


def test_call_exception_chain_in_excinfo(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    with pytest.raises(ExecutionFailed) as info:
        interp.call(call_func_chained)
    excinfo = info.value.excinfo
    assert excinfo.type.__name__ == "ValueError"
    assert excinfo.msg == "boom"
    assert excinfo.formatted.strip().endswith("ValueError: boom")
    display = excinfo.errdisplay
    assert "KeyError: 'missing'" in display
    assert "The above exception was the direct cause of the following exception:" in display
    assert "call_func_chained" in display
    assert display.index("KeyError") < display.index("ValueError: boom")


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "expected"),
    [
        (call_func_noop, (), {}, None),
        (call_func_ident, ("spamspamspam",), {}, "spamspamspam"),
        (call_func_return_shareable, (), {}, (1, None)),
        (call_func_return_pickleable, (), {}, [1, 2, 3]),
        (Spam.noop, (), {}, None),
        (Spam.from_values, (), {}, Spam(())),
        (Spam.from_values, (1, 2, 3), {}, Spam((1, 2, 3))),
        (Spam, ("???",), {}, Spam("???")),
        (Spam(101), (), {}, (101, (), {})),
        (Spam(10101).run, (), {}, (10101, (), {})),
        (call_func_complex, ("ident", "spam"), {}, "spam"),
        (call_func_complex, ("full-ident", "spam"), {}, ("spam", (), {})),
        (
            call_func_complex,
            ("full-ident", "spam", "ham"),
            {"eggs": "!!!"},
            ("spam", ("ham",), {"eggs": "!!!"}),
        ),
        (call_func_complex, ("custom", "spam!"), {}, Spam("spam!")),
    ],
    ids=lambda v: getattr(v, "__qualname__", None) or repr(v)[:20],
)
def test_call_valid(
    func: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    expected: object,
    shared_interp: interpreters.Interpreter,
) -> None:
    interp = shared_interp
    assert interp.call(func, *args, **kwargs) == expected


def test_call_closure_returned_from_there(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    with pytest.raises(NotShareableError):
        interp.call(call_func_complex, "closure", value="~~~")


def test_call_not_callable(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    for bad in (1, "divmod", None):
        with pytest.raises(TypeError, match="callable"):
            interp.call(bad)  # type: ignore[arg-type]  # deliberately not callable


def test_call_closed() -> None:
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.call(divmod, 1, 2)


def test_callable_requires_frame() -> None:
    interp = interpreters.create()
    assert interp.call(eval, "[1, 2, 3]") == [1, 2, 3]
    assert interp.call(eval, "sum([1, 2, 3])") == 6
    assert interp.call(exec, "...") is None
    names = interp.call(dir)
    assert isinstance(names, list)
    assert "__builtins__" in names
    with pytest.raises(NotShareableError):
        interp.call(globals)


def test_globals_from_builtins() -> None:
    interp = interpreters.create()
    names = interp.call(dir)
    assert {"__builtins__", "__doc__", "__name__", "__spec__"} <= set(names)
    assert interp.call(eval, "__name__") == "__main__"
    with pytest.raises(ExecutionFailed):
        interp.call(eval, "spam")
    interp.call(exec, f"assert dir() == {names}")
    interp.prepare_main(spam=42)
    assert interp.call(dir) == sorted([*names, "spam"])
    assert interp.call(eval, "spam") == 42


def test_globals_from_stateless_func() -> None:
    # A stateless function (no globals, no closure) runs with the target's __main__ as its
    # globals, like the stdlib's.
    def set_global(name: str, value: object) -> None:
        globals()[name] = value

    def get_global(name: str) -> object:
        return globals().get(name)

    interp = interpreters.create()
    assert interp.call(get_global, "__name__") == "__main__"
    assert interp.call(get_global, "spam") is None
    interp.exec("spam = True")
    assert interp.call(get_global, "spam") is True
    interp.call(set_global, "spam", 42)
    assert interp.call(get_global, "spam") == 42
    interp.exec("assert spam == 42, repr(spam)")


FUNC_IN_MAIN_SCRIPT = """
import sys
from subinterp_rs import interpreters

FACTOR = 3
count = 0

def scale(x):
    return x * FACTOR

def inc(x=1):
    global count
    count += x

def get_count():
    return count

if __name__ == "__main__":
    interp = interpreters.create()
    results = {"scale": interp.call(scale, 5)}
    counts = [interp.call(get_count)]
    interp.call(inc)
    counts.append(interp.call(get_count))
    interp.call(inc, 3)
    counts.append(interp.call(get_count))
    results["counts"] = counts
    results["count_here"] = count
    q = interpreters.create_queue()
    interp.prepare_main(q=q)
    interp.exec("q.put(tuple(name in vars() for name in ('count', 'inc', 'scale')))")
    results["main_untouched"] = q.get(timeout=10)
    print(results)
"""


def test_call_func_in_script___main__(tmp_path: Path) -> None:
    script = tmp_path / "my_script.py"
    script.write_text(FUNC_IN_MAIN_SCRIPT)
    proc = run_python(str(script), cwd=str(tmp_path), check=True)
    results = eval(proc.stdout)
    assert results["scale"] == 15
    # Like the stdlib: the script's globals live on in the other interpreter, hidden from
    # its __main__, and nothing changes here.
    assert results["counts"] == [0, 1, 4]
    assert results["count_here"] == 0
    assert results["main_untouched"] == (False, False, False)


def test_call_func_in_script___main___indirect(tmp_path: Path) -> None:
    (tmp_path / "mymod.py").write_text(
        textwrap.dedent(
            """
            from subinterp_rs import interpreters
            def run(func, *args):
                interp = interpreters.create()
                return interp.call(func, *args)
            """
        )
    )
    script = tmp_path / "my_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import mymod
            OFFSET = 100
            def spam(x):
                return x + OFFSET
            if __name__ == "__main__":
                print(mymod.run(spam, 1))
            """
        )
    )
    proc = run_python(str(script), cwd=str(tmp_path), check=True)
    assert proc.stdout.strip() == "101"


def test_call_in_thread() -> None:
    interp = interpreters.create()
    cases: list[tuple[Callable[..., object], tuple[object, ...], dict[str, object]]] = [
        (call_func_noop, (), {}),
        (call_func_return_shareable, (), {}),
        (call_func_return_pickleable, (), {}),
        (Spam.from_values, (), {}),
        (Spam.from_values, (1, 2, 3), {}),
        (Spam(101), (), {}),
        (Spam(10101).run, (), {}),
        (Spam.noop, (), {}),
        (call_func_complex, ("ident", "spam"), {}),
        (call_func_complex, ("full-ident", "spam", "ham"), {"eggs": "!!!"}),
        (call_func_complex, ("globals",), {}),
        (call_func_complex, ("interpid",), {}),
        (call_func_complex, ("custom", "spam!"), {}),
    ]
    for func, args, kwargs in cases:
        with captured_thread_exceptions() as caught:
            t = interp.call_in_thread(func, *args, **kwargs)
            assert isinstance(t, threading.Thread)
            assert t.ident is not None  # started
            t.join()
        assert caught == [], (func, caught)


def test_call_in_thread_failures(shared_interp: interpreters.Interpreter) -> None:
    interp = shared_interp
    cases: list[tuple[Callable[..., object], tuple[object, ...]]] = [
        (call_func_ident, (threading.Lock(),)),
        (call_func_return_lock, ()),
        (call_func_failure, ()),
    ]
    for func, args in cases:
        with captured_thread_exceptions() as caught:
            t = interp.call_in_thread(func, *args)
            t.join()
        assert len(caught) == 1, func
        assert isinstance(caught[0], (NotShareableError, ExecutionFailed))


def test_call_in_thread_runs_concurrently() -> None:
    interp = interpreters.create()
    with pipe() as (r, w):
        t = interp.call_in_thread(os.read, r, 1)
        try:
            assert wait_for(interp.is_running)
            assert t.is_alive()
        finally:
            os.write(w, b"x")
            t.join()
    assert not interp.is_running()


# -- is_shareable() -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        None,
        b"spam",
        "spam",
        10,
        -10,
        2**64,
        True,
        False,
        100.0,
        (),
        (1, ("spam", "eggs"), True),
        memoryview(b"spam"),
    ],
    ids=stable_id,
)
def test_default_shareables(obj: object) -> None:
    assert interpreters.is_shareable(obj) is True


def test_queue_is_shareable() -> None:
    assert interpreters.is_shareable(interpreters.create_queue()) is True


class Cheese:
    def __init__(self, name: str) -> None:
        self.name = name


class SubBytes(bytes):
    """A subclass of a shareable type."""


@pytest.mark.parametrize(
    "obj",
    [
        NotImplemented,
        ...,
        type,
        object,
        object(),
        Exception(),
        Cheese,
        Cheese("Wensleydale"),
        SubBytes(b"spam"),
        [1, 2],
        {"a": 1},
        (1, [2]),
        threading.Lock(),
    ],
    ids=stable_id,
)
def test_not_shareable(obj: object) -> None:
    assert interpreters.is_shareable(obj) is False


# -- side by side with the stdlib's module ------------------------------------------------------


def _misuse_cases() -> list[tuple[str, tuple[int, int], Callable[[types.ModuleType], object]]]:
    # m: our module or the stdlib's; what they return is of that module's classes.
    def closed_interp(m: types.ModuleType) -> Any:
        interp = m.create()
        interp.close()
        return interp

    def full_queue(m: types.ModuleType) -> Any:
        q = m.create_queue(1)
        q.put_nowait(1)
        return q

    def script_with_args(a: object) -> None:
        pass

    return [
        ("Interpreter('1')", (3, 13), lambda m: m.Interpreter("1")),
        ("Interpreter(-1)", (3, 13), lambda m: m.Interpreter(-1)),
        ("Interpreter(1_000_000)", (3, 13), lambda m: m.Interpreter(1_000_000)),
        ("main.close()", (3, 13), lambda m: m.get_main().close()),
        ("main.exec()", (3, 13), lambda m: m.get_main().exec("x = 1")),
        ("closed.close()", (3, 13), lambda m: closed_interp(m).close()),
        ("closed.exec()", (3, 13), lambda m: closed_interp(m).exec("x = 1")),
        ("closed.is_running()", (3, 13), lambda m: closed_interp(m).is_running()),
        ("exec(10)", (3, 13), lambda m: m.create().exec(10)),
        ("prepare_main()", (3, 13), lambda m: m.create().prepare_main()),
        ("prepare_main(x=object())", (3, 13), lambda m: m.create().prepare_main(x=object())),
        ("exec(raise)", (3, 13), lambda m: m.create().exec("raise KeyError(1)")),
        ("create_queue('1')", (3, 13), lambda m: m.create_queue("1")),
        ("get_nowait()", (3, 13), lambda m: m.create_queue().get_nowait()),
        ("get(timeout=0.01)", (3, 13), lambda m: m.create_queue().get(timeout=0.01)),
        ("get(timeout=-1)", (3, 13), lambda m: m.create_queue().get(timeout=-1)),
        ("put_nowait() full", (3, 13), lambda m: full_queue(m).put_nowait(2)),
        ("Queue('1')", (3, 13), lambda m: m.Queue("1")),
        ("Queue(10**6)", (3, 13), lambda m: m.Queue(10**6)),
        ("unbounditems=None", (3, 13), lambda m: m.create_queue(unbounditems=None)),
        ("exec(func with args)", (3, 14), lambda m: m.create().exec(script_with_args)),
        ("call(1)", (3, 14), lambda m: m.create().call(1)),
        ("call(divmod, 1, 0)", (3, 14), lambda m: m.create().call(divmod, 1, 0)),
        ("call(lock)", (3, 14), lambda m: m.create().call(call_func_return_lock)),
        (
            "call(local class)",
            (3, 14),
            lambda m: m.create().call(call_func_return_local_class_instance),
        ),
        ("put(timeout=-1)", (3, 14), lambda m: full_queue(m).put(2, timeout=-1)),
        ("put(timeout=0.01) full", (3, 14), lambda m: full_queue(m).put(2, timeout=0.01)),
    ]


def _raised(func: Callable[[types.ModuleType], object], module: types.ModuleType) -> Any:
    # (Any: an exception of either module's classes)
    try:
        func(module)
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def _builtin_bases(exc: BaseException) -> set[str]:
    return {
        base.__name__
        for base in type(exc).__mro__
        if base.__module__ in ("builtins", "queue", "_queue")
    }


@needs_stdlib
@pytest.mark.parametrize(
    ("what", "since", "func"), _misuse_cases(), ids=[c[0] for c in _misuse_cases()]
)
def test_same_exceptions_as_stdlib(
    what: str, since: tuple[int, int], func: Callable[[types.ModuleType], object]
) -> None:
    if sys.version_info < since:
        pytest.skip(f"the stdlib module of {sys.version_info[:2]} lacks this")
    theirs = _raised(func, std)
    ours = _raised(func, interpreters)
    assert type(ours).__name__ == type(theirs).__name__, (what, ours, theirs)
    assert _builtin_bases(theirs) <= _builtin_bases(ours), (what, ours, theirs)
    if hasattr(theirs, "excinfo"):
        assert ours.excinfo.type.__name__ == theirs.excinfo.type.__name__
        assert ours.excinfo.msg == theirs.excinfo.msg


@needs_stdlib
def test_list_all_sees_stdlib_interpreters() -> None:
    theirs = std.create()
    ours = interpreters.create()
    try:
        ours_view = {i.id: i.whence for i in interpreters.list_all()}
        std_view = {i.id: i.whence for i in std.list_all()}
        assert set(ours_view) == set(std_view)
        assert ours_view[theirs.id] == WHENCE_STR_STDLIB
        assert ours_view[0] == std_view[0] == WHENCE_STR_RUNTIME
        assert std_view[ours.id] in (WHENCE_STR_STDLIB, WHENCE_STR_CAPI)
        assert interpreters.Interpreter(theirs.id).whence == WHENCE_STR_STDLIB
        # Their interpreter (whence "stdlib") closes as with the stdlib's own close().
        interpreters.Interpreter(theirs.id).close()
        assert theirs.id not in {i.id for i in std.list_all()}
    finally:
        with contextlib.suppress(std.InterpreterNotFoundError):
            theirs.close()
        ours.close()
    assert theirs.id not in {i.id for i in interpreters.list_all()}


@needs_stdlib_314
def test_execution_failed_same_as_stdlib() -> None:
    script = "try:\n    1 / 0\nexcept Exception as e:\n    raise ValueError('boom') from e\n"
    results = []
    for m in (std, interpreters):
        interp = m.create()
        try:
            with pytest.raises(m.ExecutionFailed) as info:
                interp.exec(script)
        finally:
            interp.close()
        results.append(info.value)
    theirs, ours = results
    for field in ("__name__", "__qualname__", "__module__"):
        assert getattr(ours.excinfo.type, field) == getattr(theirs.excinfo.type, field)
    assert ours.excinfo.msg == theirs.excinfo.msg
    assert ours.excinfo.formatted == theirs.excinfo.formatted
    assert ours.excinfo.errdisplay == theirs.excinfo.errdisplay
    assert str(ours) == str(theirs)
    assert ours.args == theirs.args


@needs_stdlib_314
@pytest.mark.parametrize(
    "func",
    [
        script_func_sets_globals,
        script_func_raises,
        script_func_with_args,
        script_func_with_kwonly,
        script_func_varargs,
        script_func_returns,
        script_func_generator,
        script_func_coroutine,
        script_func_returns_none_explicitly,
        script_func_uses_cell,
        _make_closure(),
        "x = 1",
        b"x = 1",
        "def f(:",
        compile("1", "<s>", "eval"),
        compile("1", "<s>", "single"),
        print,
        10,
    ],
    ids=stable_id,
)
def test_exec_scripts_same_as_stdlib(func: object) -> None:
    outcomes: list[tuple[str, ...]] = []
    for m in (std, interpreters):
        interp = m.create()
        try:
            interp.exec(func)
        except m.ExecutionFailed as exc:
            outcomes.append(("ExecutionFailed", exc.excinfo.type.__name__, exc.excinfo.msg))
        except Exception as exc:
            outcomes.append((type(exc).__name__, str(exc).split(":")[0]))
        else:
            outcomes.append(("ok",))
        finally:
            interp.close()
    theirs, ours = outcomes
    assert ours == theirs


@needs_stdlib_314
@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (divmod, (17, 5), {}),
        (call_func_ident, ((1, "a", b"b", None, 2.5),), {}),
        (call_func_ident, ([1, {"a": (2,)}],), {}),
        (call_func_full_args, (1, 2, 3, 4, "?"), {"e": 5, "f": 6, "g": 7}),
        (call_func_noop, (), {}),
        (call_func_return_pickleable, (), {}),
        (eval, ("__name__",), {}),
        # (Functions that use this module's globals are left out: the stdlib's
        # subinterpreters do not see the tests/ directory pytest put on sys.path.)
        (math.factorial, (30,), {}),
    ],
    ids=lambda v: getattr(v, "__qualname__", None) or repr(v)[:20],
)
def test_call_same_as_stdlib(
    func: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    results = []
    for m in (std, interpreters):
        interp = m.create()
        try:
            results.append(interp.call(func, *args, **kwargs))
        finally:
            interp.close()
    theirs, ours = results
    assert ours == theirs
    assert type(ours) is type(theirs)


@needs_stdlib
def test_queue_ops_same_as_stdlib() -> None:
    def scenario(m: types.ModuleType) -> list[object]:
        log: list[object] = []
        q = m.create_queue(2)
        log.append((q.maxsize, q.empty(), q.full(), q.qsize()))
        q.put_nowait(1)
        q.put_nowait("two")
        log.append((q.empty(), q.full(), q.qsize()))
        try:
            q.put_nowait(3)
        except queue_module.Full as exc:
            log.append(("full", type(exc).__name__))
        log.append(q.get_nowait())
        log.append(q.get(timeout=1))
        try:
            q.get_nowait()
        except queue_module.Empty as exc:
            log.append(("empty", type(exc).__name__))
        for obj in [None, True, 10, "spam", b"spam", (0, "a"), [1, 2, 3], {"a": 13}]:
            q.put_nowait(obj)
            log.append(q.get_nowait())
        log.append(repr(q).split("(")[0])
        log.append(m.create_queue(-10).maxsize)
        return log

    assert scenario(interpreters) == scenario(std)


@needs_stdlib
def test_stdlib_objects_cross_into_our_interpreter() -> None:
    # A value made by the stdlib's module is just an object to us: it crosses by pickle or
    # as data, like any other.
    interp = interpreters.create()
    theirs = std.create()
    try:
        assert interp.call(call_func_ident, (1, "two")) == (1, "two")
        assert interp.call(operator.add, theirs.id, 1) == theirs.id + 1
    finally:
        theirs.close()
