"""The low-level API: Subinterpreter, InterpreterConfig, exceptions, and every misuse."""

from __future__ import annotations

import functools
import gc
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
import subinterp_rs
from _helpers import run_snippet, run_threads
from subinterp_rs import (
    ExecutionFailed,
    InterpreterConfig,
    InterpreterError,
    NotShareableError,
    Subinterpreter,
    _native,
    interpreters,
)


@pytest.fixture
def si() -> Iterator[Subinterpreter]:
    with Subinterpreter.create() as s:
        yield s


def live_ids() -> list[int]:
    return [i for i, _ in _native.list_all()]


def raised_inside(si: Subinterpreter, code: str) -> str:
    """The name of the exception type that ``code`` raises inside ``si`` (``ExecutionFailed``)."""
    with pytest.raises(ExecutionFailed) as info:
        si.exec(code)
    return str(info.value.excinfo.type.__name__)


# -- config ---------------------------------------------------------------------------------


def test_config_defaults_are_isolated() -> None:
    cfg = InterpreterConfig()
    assert cfg == InterpreterConfig.isolated()
    assert cfg.gil == "own"
    assert not cfg.use_main_obmalloc
    assert cfg.allow_threads and not cfg.allow_daemon_threads
    assert not cfg.allow_fork and not cfg.allow_exec
    assert cfg.check_multi_interp_extensions


def test_config_legacy() -> None:
    cfg = InterpreterConfig.legacy()
    assert cfg.gil == "shared" and cfg.use_main_obmalloc
    assert not cfg.check_multi_interp_extensions


def test_config_is_frozen_and_keyword_only() -> None:
    cfg = InterpreterConfig()
    with pytest.raises(AttributeError):
        cfg.gil = "shared"
    with pytest.raises(TypeError):
        InterpreterConfig(False)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"use_main_obmalloc": True}, ValueError, "own object allocator"),
        ({"check_multi_interp_extensions": False}, ValueError, "single-phase"),
        ({"gil": "mine"}, ValueError, "gil must be"),
        ({"allow_threads": 1}, TypeError, "must be a bool"),
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict[str, object], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        InterpreterConfig(**kwargs)  # type: ignore[arg-type]


def test_native_rejects_invalid_config_too() -> None:
    with pytest.raises(ValueError, match="own object allocator"):
        _native.create(True, False, False, True, False, True, "own", _native.WHENCE_CAPI)


def test_create_needs_a_config_object() -> None:
    with pytest.raises(TypeError, match="InterpreterConfig"):
        Subinterpreter.create({"gil": "own"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cfg",
    [
        InterpreterConfig.isolated(),
        InterpreterConfig.legacy(),
        InterpreterConfig(gil="shared"),
        InterpreterConfig(gil="default"),
        InterpreterConfig(use_main_obmalloc=True, gil="shared"),
    ],
)
def test_every_valid_config_creates(cfg: InterpreterConfig) -> None:
    with Subinterpreter.create(cfg) as s:
        assert s.call(sum, (1, 2, 3)) == 6


# -- handles --------------------------------------------------------------------------------


def test_handle_basics(si: Subinterpreter) -> None:
    assert si.id > 0
    assert si
    assert si.owned
    assert si.id in live_ids()
    assert repr(si) == f"<Subinterpreter id={si.id} owned>"
    assert si == Subinterpreter.current() or si.id != Subinterpreter.current().id


def test_main_and_current_are_non_owning() -> None:
    main = Subinterpreter.main()
    assert main.id == 0 and not main.owned
    assert Subinterpreter.current() == main
    with pytest.raises(InterpreterError, match="not owned"):
        main.close()
    with pytest.raises(InterpreterError, match="not owned"):
        main.disarm()


def test_constructor_is_not_public() -> None:
    with pytest.raises(TypeError, match="create"):
        Subinterpreter()


def test_close_then_use_raises() -> None:
    s = Subinterpreter.create()
    id_ = s.id
    s.close()
    assert not s and s.id == -1
    assert id_ not in live_ids()
    for op in (
        lambda: s.exec("pass"),
        lambda: s.call(len, ()),
        lambda: s.prepare_main(x=1),
        s.close,
        s.is_running,
    ):
        with pytest.raises(InterpreterError, match="closed"):
            op()


def test_with_closes() -> None:
    with Subinterpreter.create() as s:
        id_ = s.id
    assert id_ not in live_ids()


def test_disarm_leaks_on_purpose() -> None:
    s = Subinterpreter.create()
    id_ = s.id
    s.disarm()
    assert not s.owned
    assert not _native.is_owned(id_)
    with pytest.raises(InterpreterError, match="not owned"):
        s.close()
    with pytest.raises(InterpreterError, match="disarmed"):
        _native.destroy(id_)
    # Still usable as a non-owning handle, and still alive.
    assert s.call(abs, -3) == 3
    assert id_ in live_ids()


def test_garbage_collected_owner_closes_its_interpreter() -> None:
    s = Subinterpreter.create()
    id_ = s.id
    del s
    gc.collect()
    assert id_ not in live_ids()


def test_native_errors_for_unknown_ids() -> None:
    with pytest.raises(subinterp_rs.InterpreterNotFoundError):
        _native.exec(10**9, "pass")
    with pytest.raises(subinterp_rs.InterpreterNotFoundError):
        _native.destroy(10**9)
    with pytest.raises(subinterp_rs.InterpreterNotFoundError):
        _native.is_running(10**9)
    with pytest.raises(TypeError):
        _native.exec("1", "pass")  # type: ignore[arg-type]


# -- exec and call --------------------------------------------------------------------------


def test_exec_runs_in_its_own_main(si: Subinterpreter) -> None:
    si.exec("import math; x = math.factorial(20)")
    si.exec("assert x == 2432902008176640000")
    assert "x" not in globals()


def test_exec_code_objects_and_functions(si: Subinterpreter) -> None:
    si.exec(compile("y = 41 + 1", "<test>", "exec"))

    def body() -> None:
        global z
        z = 5  # type: ignore[name-defined]

    si.exec(body)
    si.exec("assert y == 42 and z == 5")
    with pytest.raises(ValueError, match="no arguments"):
        si.exec(lambda a: a)  # type: ignore[arg-type,misc]
    with pytest.raises(TypeError, match="exec"):
        si.exec(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="null"):
        si.exec("x = 1\0")


def test_exception_becomes_execution_failed(si: Subinterpreter) -> None:
    with pytest.raises(ExecutionFailed) as info:
        si.exec(
            textwrap.dedent(
                """
                def f():
                    try:
                        1 / 0
                    except Exception as e:
                        raise KeyError("spam") from e
                f()
                """
            )
        )
    exc = info.value
    assert isinstance(exc, InterpreterError)
    assert exc.excinfo.type.__name__ == "KeyError"
    assert exc.excinfo.type.__module__ == "builtins"
    assert exc.excinfo.msg == "'spam'"
    assert exc.excinfo.formatted == "KeyError: 'spam'"
    assert "ZeroDivisionError" in exc.excinfo.errdisplay
    assert "direct cause" in exc.excinfo.errdisplay
    assert "Uncaught in the interpreter" in str(exc)


def test_syntax_error(si: Subinterpreter) -> None:
    assert raised_inside(si, "def (:") == "SyntaxError"


@pytest.mark.parametrize("exc", ["SystemExit(3)", "KeyboardInterrupt()", "GeneratorExit()"])
def test_base_exceptions_inside_do_not_escape(si: Subinterpreter, exc: str) -> None:
    assert raised_inside(si, f"raise {exc}") == exc.split("(")[0]
    assert si.call(abs, -1) == 1  # still usable


def test_recursion_and_memory_errors_inside(si: Subinterpreter) -> None:
    assert raised_inside(si, "def f(): return f()\nf()") == "RecursionError"
    assert raised_inside(si, "b'x' * (1 << 62)") in ("MemoryError", "OverflowError")


def test_call_builtins_and_values(si: Subinterpreter) -> None:
    assert si.call(divmod, 17, 5) == (3, 2)
    assert si.call(pow, 2, 200) == 2**200
    assert si.call(pow, -3, 41) == (-3) ** 41
    assert si.call(max, 1.5, 2.5) == 2.5
    assert si.call(str.upper, "héllo \U0001f600") == "HÉLLO \U0001f600"
    assert si.call(bytes.fromhex, "00ff") == b"\x00\xff"
    assert si.call(tuple, ((1, None), (True, b"x"))) == ((1, None), (True, b"x"))
    assert si.call(sorted, [3, 1, 2]) == [1, 2, 3]  # via pickle
    assert si.call(dict, a=1, b=(2,)) == {"a": 1, "b": (2,)}


def helper_square(x: int) -> int:
    return x * x


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def test_call_module_functions_classes_and_closures(si: Subinterpreter) -> None:
    assert si.call(helper_square, 12) == 144
    assert si.call(Point, 1, 2) == Point(1, 2)
    k = 10

    def add_k(x: int) -> int:
        return x + k

    assert si.call(add_k, 5) == 15
    assert si.call(lambda: (1, 2)) == (1, 2)


def test_call_errors(si: Subinterpreter) -> None:
    with pytest.raises(TypeError, match="not callable"):
        si.call(42)  # type: ignore[arg-type]
    lock = threading.Lock()
    with pytest.raises(NotShareableError, match="argument 1"):
        si.call(id, lock)
    with pytest.raises(NotShareableError, match="result"):
        si.call(threading.Lock)
    with pytest.raises(ExecutionFailed) as info:
        si.call(int, "nope")
    assert info.value.excinfo.type.__name__ == "ValueError"


def test_prepare_main(si: Subinterpreter) -> None:
    si.prepare_main({"a": 1}, b="two", c=(3.0, None))
    si.exec("assert (a, b, c) == (1, 'two', (3.0, None))")
    with pytest.raises(NotShareableError):
        si.prepare_main(d=[1, 2])
    with pytest.raises(ExecutionFailed):
        si.exec("d")


def test_memoryview_crosses_without_copy(si: Subinterpreter) -> None:
    data = bytearray(b"hello world")
    view = memoryview(data)
    si.prepare_main(v=view)
    si.exec("v[0:5] = b'HELLO'")
    assert bytes(data) == b"HELLO world"
    si.exec("del v")
    assert si.call(bytes, memoryview(b"abc")) == b"abc"


def test_memoryview_dropped_elsewhere_releases_its_export(si: Subinterpreter) -> None:
    # A memoryview of a main bytearray, sent through a queue and dropped inside the
    # subinterpreter, must give the export back to main: the bytearray can grow again.
    q = interpreters.create_queue()
    si.prepare_main(q=q)
    data = bytearray(b"hello")
    q.put(memoryview(data))
    si.exec("m = q.get(); n = len(m); del m")
    data.extend(b" world")  # BufferError if the export were still held
    assert data == b"hello world"
    # The same through __main__ and exec.
    si.prepare_main(v=memoryview(data))
    si.exec("del v")
    data.extend(b"!")
    assert data == b"hello world!"


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 - 1, 64 * 1024, 3 * 2**20 + 7])
def test_bytes_cross_intact_at_every_size(si: Subinterpreter, size: int) -> None:
    # Small bytes are copied out; large ones are read in place and copied once.
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert si.call(len, data) == size
    back = si.call(bytes.__add__, data, b"!")
    assert back == data + b"!"
    q = interpreters.create_queue()
    si.prepare_main(q=q, blob=data)
    si.exec("q.put(blob); q.put(blob[::-1])")
    assert q.get() == data
    assert q.get() == data[::-1]


def test_is_shareable() -> None:
    shareable: list[object] = [None, True, 1, 2**100, 1.5, "s", b"b", (1, ("x",)), memoryview(b"m")]
    for obj in shareable:
        assert _native.is_shareable(obj), obj
    not_shareable: list[object] = [[], {}, object(), bytearray(), (1, [])]
    for obj in not_shareable:
        assert not _native.is_shareable(obj), obj


# -- threads and misuse ---------------------------------------------------------------------


def _busy(n: int) -> int:
    total = 0
    for i in range(n):
        total += i % 7
    return total


def test_threads_drive_their_own_interpreters_in_parallel() -> None:
    n = 4
    interps = [Subinterpreter.create() for _ in range(n)]
    results: list[int] = [0] * n

    def work(i: int) -> None:
        results[i] = interps[i].call(_busy, 200_000)

    run_threads(*(functools.partial(work, i) for i in range(n)))
    assert results == [_busy(200_000)] * n
    for s in interps:
        s.close()


def test_close_while_running_in_another_thread_is_refused(si: Subinterpreter) -> None:
    started = threading.Event()

    def run() -> None:
        si.prepare_main(go=True)
        started.set()
        si.exec("import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.0: pass")

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    time.sleep(0.2)
    assert si.is_running()
    with pytest.raises(InterpreterError, match="running"):
        si.close()
    with pytest.raises(InterpreterError, match="running"):
        si.exec("pass")
    t.join()
    assert not si.is_running()


def test_close_current_from_inside_is_refused(si: Subinterpreter) -> None:
    si.exec(
        textwrap.dedent(
            """
            from subinterp_rs import Subinterpreter, InterpreterError, _native
            me = Subinterpreter.current()
            try:
                _native.destroy(me.id)
            except InterpreterError as e:
                err = str(e)
            """
        )
    )
    si.exec("assert 'current' in err, err")


def test_nested_exec_into_the_same_interpreter_is_refused(si: Subinterpreter) -> None:
    si.prepare_main(my_id=si.id)
    si.exec(
        textwrap.dedent(
            """
            from subinterp_rs import _native, InterpreterError
            try:
                _native.exec(my_id, "pass")
            except InterpreterError as e:
                err = str(e)
            """
        )
    )
    si.exec("assert 'running' in err, err")


def test_exec_into_main_from_a_subinterpreter_is_refused(si: Subinterpreter) -> None:
    si.exec(
        "from subinterp_rs import _native, InterpreterError\n"
        "try:\n    _native.exec(0, 'pass')\nexcept InterpreterError as e:\n    err = str(e)\n"
    )
    si.exec("assert 'running' in err, err")


def test_nested_interpreters_from_a_subinterpreter(si: Subinterpreter) -> None:
    si.exec(
        textwrap.dedent(
            """
            from subinterp_rs import Subinterpreter
            with Subinterpreter.create() as inner:
                r = inner.call(divmod, 9, 4)
                inner_id = inner.id
            """
        )
    )
    si.exec("assert r == (2, 1)")


def test_daemon_threads_forbidden_by_default(si: Subinterpreter) -> None:
    assert (
        raised_inside(si, "import threading; threading.Thread(target=print, daemon=True).start()")
        == "RuntimeError"
    )


def test_close_with_daemon_thread_alive_is_refused() -> None:
    s = Subinterpreter.create(InterpreterConfig(allow_daemon_threads=True))
    s.exec(
        "import threading\nev = threading.Event()\n"
        "t = threading.Thread(target=ev.wait, daemon=True)\nt.start()"
    )
    with pytest.raises(InterpreterError, match="daemon"):
        s.close()
    s.exec("ev.set(); t.join()")
    s.close()


def test_close_joins_non_daemon_threads() -> None:
    s = Subinterpreter.create()
    s.exec(
        "import threading, time\nout = []\n"
        "t = threading.Thread(target=lambda: (time.sleep(0.1), out.append(1)))\nt.start()"
    )
    s.close()
    assert not s


def test_fork_and_exec_forbidden_by_isolated_config(si: Subinterpreter) -> None:
    assert raised_inside(si, "import os; os.fork()") == "RuntimeError"
    assert raised_inside(si, "import os; os.execv('/bin/true', ['true'])") == "RuntimeError"


def test_legacy_interpreter_can_use_the_package() -> None:
    with Subinterpreter.create(InterpreterConfig.legacy()) as s:
        s.exec(
            "import subinterp_rs\nfrom subinterp_rs import Subinterpreter\n"
            "with Subinterpreter.create() as x:\n    r = x.call(abs, -2)"
        )
        s.exec("assert r == 2")


def test_handles_passed_to_another_interpreter(si: Subinterpreter) -> None:
    other = Subinterpreter.create()
    si.prepare_main(other_id=other.id)
    si.exec("from subinterp_rs import _native\nr = _native.call(other_id, abs, (-5,), None)")
    si.exec("assert r == 5")
    other.close()
    si.exec(
        "from subinterp_rs import InterpreterNotFoundError\n"
        "try:\n    _native.exec(other_id, 'pass')\n"
        "except InterpreterNotFoundError:\n    gone = True"
    )
    si.exec("assert gone")


def test_exit_with_live_interpreters_is_clean() -> None:
    proc = run_snippet(
        """
        import threading, time
        from subinterp_rs import Subinterpreter
        idle = Subinterpreter.create()
        idle.exec("x = 1")
        busy = Subinterpreter.create()
        def spin():
            busy.exec("while True: pass")
        threading.Thread(target=spin, daemon=True).start()
        time.sleep(0.3)
        print("bye")
        """
    )
    assert proc.stdout.strip() == "bye"


def test_fork_from_main_with_live_subinterpreters() -> None:
    # CPython's own after-fork cleanup crashes (3.13) or hangs (3.12) the child when
    # subinterpreters exist, so fork is refused with a clear error while any is alive, and
    # works again once they are closed.
    proc = run_snippet(
        """
        import os
        from subinterp_rs import InterpreterError, Subinterpreter
        s = Subinterpreter.create()
        assert s.call(abs, -1) == 1
        try:
            os.fork()
        except InterpreterError as e:
            print("refused:", "Close them first" in str(e))
        assert s.call(abs, -2) == 2
        s.close()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        print("child:", os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.stdout.split("\n")[:2] == ["refused: True", "child: 7"]
