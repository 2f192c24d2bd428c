"""The PEP 734 facade under load.

A port of CPython's ``Lib/test/test_interpreters/test_stress.py`` (3.14), plus parallel calls,
queue traffic and create/close churn. Sized to take seconds; ``SUBINTERP_SOAK=1`` scales
everything up (``scripts/soak.py``-style runs of minutes).
"""

import functools
import gc
import threading
import time

import pytest
from _helpers import (
    JOIN_TIMEOUT,
    clean_interpreters,  # noqa: F401  (fixture)
    interp_exists,
    join_all,
    run_snippet,
    run_threads,
    scaled,
    start_threads,
)
from subinterp_rs import interpreters
from subinterp_rs.interpreters import ExecutionFailed, InterpreterError

pytestmark = pytest.mark.usefixtures("clean_interpreters")


def test_create_many_sequential() -> None:
    before = {i.id for i in interpreters.list_all()}
    alive = [interpreters.create() for _ in range(scaled(20, 100))]
    assert len({interp.id for interp in alive}) == len(alive)
    assert {i.id for i in interpreters.list_all()} == before | {i.id for i in alive}
    del alive
    gc.collect()
    assert {i.id for i in interpreters.list_all()} == before


def test_create_many_threaded() -> None:
    size = scaled(16, 200)
    before = {i.id for i in interpreters.list_all()}
    alive = []
    errors = []
    start = threading.Event()

    def task() -> None:
        # Try to create all interpreters simultaneously.
        if not start.wait(30):
            raise TimeoutError
        try:
            interp = interpreters.create()
            interp.exec("x = 1")
            alive.append(interp)
        except Exception as exc:
            errors.append(exc)

    threads = start_threads(*[task] * size)
    start.set()
    join_all(threads)
    assert errors == []
    assert len(alive) == size
    assert len({i.id for i in alive}) == size
    alive.clear()
    gc.collect()
    assert {i.id for i in interpreters.list_all()} == before


def test_many_threads_running_interp_in_other_interp() -> None:
    size = scaled(8, 100)
    start = threading.Event()
    interp = interpreters.create()
    script = f"""if True:
        from subinterp_rs import interpreters
        interpreters.Interpreter({interp.id}).exec('1')
        """
    successes = []
    failures = []

    def run() -> None:
        other = interpreters.create()
        if not start.wait(30):
            raise TimeoutError
        retries = 0
        while True:
            try:
                other.exec(script)
            except ExecutionFailed as exc:
                # The target runs in another thread: "already running", retry.
                if exc.excinfo.type.__name__ != "InterpreterError" or retries > 10_000:
                    failures.append(exc)
                    return
                retries += 1
                time.sleep(0.0005)
            else:
                successes.append(retries)
                return

    threads = start_threads(*[run] * size)
    start.set()
    join_all(threads)
    assert failures == []
    assert len(successes) == size


def _busy_sum(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_parallel_calls_in_threads() -> None:
    nthreads = scaled(4, 16)
    calls = scaled(20, 500)
    interps = [interpreters.create() for _ in range(nthreads)]
    results: dict[int, list[int]] = {}

    def worker(k: int, interp: interpreters.Interpreter) -> None:
        results[k] = [interp.call(_busy_sum, 1000 + i) for i in range(calls)]

    run_threads(*(functools.partial(worker, k, i) for k, i in enumerate(interps)))
    expected = [_busy_sum(1000 + i) for i in range(calls)]
    assert all(results[k] == expected for k in range(nthreads))


def test_call_in_thread_fan_out() -> None:
    interps = [interpreters.create() for _ in range(scaled(4, 32))]
    q = interpreters.create_queue()
    threads = [
        interp.call_in_thread(_put_result, q, k, scaled(2000, 200_000))
        for k, interp in enumerate(interps)
    ]
    join_all(threads)
    got = sorted(q.get(timeout=10) for _ in interps)
    assert got == sorted((k, _busy_sum(scaled(2000, 200_000))) for k in range(len(interps)))


def _put_result(q: interpreters.Queue, k: int, n: int) -> None:
    q.put((k, _busy_sum(n)))


def _relay(inbox: interpreters.Queue, outbox: interpreters.Queue, count: int) -> None:
    for _ in range(count):
        outbox.put(inbox.get(timeout=30))


def test_queue_pipeline_through_interpreters() -> None:
    count = scaled(300, 50_000)
    stages = scaled(3, 8)
    queues = [interpreters.create_queue(scaled(8, 64)) for _ in range(stages + 1)]
    interps = [interpreters.create() for _ in range(stages)]
    threads = [
        interp.call_in_thread(_relay, queues[k], queues[k + 1], count)
        for k, interp in enumerate(interps)
    ]
    items = [(i, f"item-{i}", b"x" * (i % 50)) for i in range(count)]

    def feed() -> None:
        for it in items:
            queues[0].put(it, timeout=30)

    feeder = start_threads(feed)
    out = [queues[-1].get(timeout=30) for _ in range(count)]
    join_all(feeder + threads)
    assert out == items
    assert all(q.qsize() == 0 for q in queues)


def test_create_close_churn_with_concurrent_list_all() -> None:
    rounds = scaled(15, 500)
    stop = threading.Event()
    errors = []

    def lister() -> None:
        while not stop.is_set():
            try:
                for interp in interpreters.list_all():
                    assert interp.id >= 0
                    _ = interp.whence
            except Exception as exc:
                errors.append(exc)
                return

    def churner() -> None:
        try:
            for _ in range(rounds):
                interp = interpreters.create()
                interp.exec("import sys")
                interp.close()
        except Exception as exc:
            errors.append(exc)

    listers = start_threads(lister, lister)
    try:
        run_threads(churner, churner)
    finally:
        stop.set()
        join_all(listers)
    assert errors == []


def test_list_all_races_with_create_and_destroy() -> None:
    # The facade's list_all() stands on _native.list_all(), which must stay safe while other
    # threads create and destroy interpreters (in a subprocess: a crash fails one test).
    proc = run_snippet(
        f"""
        import threading
        from subinterp_rs import _native, interpreters
        stop = threading.Event()
        def native_lister():
            while not stop.is_set():
                _native.list_all()
        def lister():
            while not stop.is_set():
                interpreters.list_all()
        def churner():
            for _ in range({scaled(60, 1000)}):
                i = _native.create(False, False, False, True, False, True, "own",
                                   _native.WHENCE_CAPI)
                _native.destroy(i)
        listers = [threading.Thread(target=f) for f in (native_lister, lister)]
        churners = [threading.Thread(target=churner) for _ in range(2)]
        for t in listers + churners:
            t.start()
        for t in churners:
            t.join()
        stop.set()
        for t in listers:
            t.join()
        print("ok")
        """,
        timeout=JOIN_TIMEOUT * 2,
    )
    assert proc.stdout == "ok\n"


def test_close_races_with_exec() -> None:
    # close() from one thread while another tries to exec: either may win, each losing side
    # gets a clear error, never a crash.
    rounds = scaled(10, 300)
    outcomes = {"closed": 0, "refused": 0}
    for _ in range(rounds):
        interp = interpreters.create()
        errors: list[InterpreterError] = []

        def runner(
            interp: interpreters.Interpreter = interp, errors: list[InterpreterError] = errors
        ) -> None:
            try:
                interp.exec("import time; time.sleep(0.002)")
            except InterpreterError as exc:  # not found (closed first) or running
                errors.append(exc)

        t = start_threads(runner)
        try:
            interp.close()
            outcomes["closed"] += 1
        except InterpreterError:
            outcomes["refused"] += 1
        join_all(t)
        if interp_exists(interp.id):
            interp.close()
        for err in errors:
            assert isinstance(err, InterpreterError)
    assert sum(outcomes.values()) == rounds


def test_queue_handles_churn_across_interpreters() -> None:
    q = interpreters.create_queue()
    interps = [interpreters.create() for _ in range(scaled(3, 16))]
    n = scaled(50, 2000)
    for interp in interps:
        interp.prepare_main(q=q)

    def worker(interp: interpreters.Interpreter) -> None:
        interp.exec(
            f"from subinterp_rs import interpreters\n"
            f"for i in range({n}):\n"
            f"    q.put(i)\n"
            f"    q2 = interpreters.Queue(q.id)\n"
            f"    assert q2 is q\n"
        )

    run_threads(*(functools.partial(worker, i) for i in interps))
    assert q.qsize() == n * len(interps)
    got = sorted(q.get_nowait() for _ in range(n * len(interps)))
    assert got == sorted(list(range(n)) * len(interps))


def test_process_exit_under_load() -> None:
    # Exit while several interpreters run and queue traffic flows in daemon threads.
    proc = run_snippet(
        f"""
        import threading, time
        from subinterp_rs import interpreters
        q = interpreters.create_queue(16)
        def pump(interp):
            interp.prepare_main(q=q)
            interp.exec('while True:\\n    q.put(1)\\n    q.get()')
        for _ in range({scaled(3, 16)}):
            threading.Thread(target=pump, args=(interpreters.create(),), daemon=True).start()
        time.sleep(0.3)
        print('exiting', flush=True)
        """,
        timeout=120,
    )
    assert proc.stdout == "exiting\n"
