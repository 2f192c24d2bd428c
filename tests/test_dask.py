"""subinterp_rs.dask: dask.distributed workers whose task slots are subinterpreters.

Against real dask: in-process clusters of distributed's own test fixture (``gen_cluster``),
``LocalCluster`` with ``processes=False`` and ``processes=True``, and ``dask scheduler`` plus
``dask worker --preload subinterp_rs.dask`` started as processes on 127.0.0.1. The 3.12 leg
runs the oldest distributed supported (the `test` dependency group), the others the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="distributed is not installed")

import subinterp_rs.dask as sdask  # noqa: E402
import support_dask as sd  # noqa: E402
from _helpers import assert_ok  # noqa: E402
from dask.base import annotate  # noqa: E402
from dask.delayed import delayed  # noqa: E402
from distributed import Client, LocalCluster, Worker  # noqa: E402
from distributed.utils_test import captured_logger, gen_cluster  # noqa: E402
from subinterp_rs import InterpreterConfig, Subinterpreter, interpreters  # noqa: E402
from subinterp_rs.dask import (  # noqa: E402
    CannotRunInSubinterpreter,
    SubinterpreterExecutor,
    SubinterpreterPlugin,
    check_distributed,
    dask_setup,
)

TESTS = Path(__file__).resolve().parent
MAIN_ID = Subinterpreter.main().id


def live_ids() -> set[int]:
    """The ids of the interpreters of this process."""
    return {interp.id for interp in interpreters.list_all()}


def sub() -> contextlib.AbstractContextManager[None]:
    """Run the tasks submitted in the block in the subinterpreters."""
    return annotate(executor="subinterp")


TIMEOUT = 60


def slot_ids(worker: Worker, name: str = "subinterp") -> list[int]:
    executor = worker.executors[name]
    assert isinstance(executor, SubinterpreterExecutor), executor
    return executor.interpreter_ids


# -- what every kind of cluster is checked for ----------------------------------------------


def check_cluster(client: Client, tmp_path: Path, *, default: bool) -> None:
    """Results, interpreters, errors and retries on a cluster whose workers have the plugin
    (as the default executor when ``default``)."""
    ids_by_worker = client.run(sd.slot_ids)
    all_ids = {i for ids in ids_by_worker.values() for i in ids}
    assert all_ids and MAIN_ID not in all_ids, ids_by_worker
    ctx = contextlib.nullcontext() if default else annotate(executor="subinterp")
    with ctx:
        futures = client.map(sd.where, range(8), pure=False)
        failing = client.submit(sd.fail, 7, pure=False)
        flaky = client.submit(sd.flaky, str(tmp_path / "flaky"), 2, retries=2, pure=False)
        lam = client.submit(lambda x: x + 1, 41, pure=False)
    results = client.gather(futures)
    assert [r[0] for r in results] == [x * x for x in range(8)]
    assert {r[1] for r in results} <= all_ids, (results, ids_by_worker)
    worker_pids = set(client.run(os.getpid).values())
    assert {r[2] for r in results} <= worker_pids
    with pytest.raises(sd.TaskFailed) as info:
        failing.result(timeout=TIMEOUT)
    assert info.value.code == 7
    assert isinstance(info.value.__cause__, KeyError)
    names = [frame.name for frame in traceback.extract_tb(info.tb)]
    assert names[-2:] == ["fail", "_check"], names
    calls, where = flaky.result(timeout=TIMEOUT)
    assert calls == 3 and where in all_ids
    assert lam.result(timeout=TIMEOUT) == 42
    # The worker's thread pool stays there, under "threads" in the default mode.
    with annotate(executor="threads" if default else "default"):
        in_main = client.submit(sd.interp_id, pure=False)
    assert in_main.result(timeout=TIMEOUT) == MAIN_ID


# -- gen_cluster: in-process scheduler and workers ----------------------------------------


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_register_plugin(c: Client, s: Any, a: Worker) -> None:
    await c.register_plugin(SubinterpreterPlugin())
    ids = slot_ids(a)
    assert len(ids) == 2 and MAIN_ID not in ids
    assert a.executors["default"] is not a.executors["subinterp"]
    with sub():
        futures = c.map(sd.where, range(6), pure=False)
    results = await c.gather(futures)
    assert [r[0] for r in results] == [x * x for x in range(6)]
    assert {r[1] for r in results} <= set(ids)
    # Not annotated: the worker's threads, in main.
    assert await c.submit(sd.interp_id, pure=False) == MAIN_ID
    # Lambdas, closures and functions of __main__ go by value (cloudpickle).
    offset = 5
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def from_main(x):\n    return x * 3\n", namespace)
    with sub():
        closure = c.submit(lambda x: x + offset, 1)
        main_fn = c.submit(namespace["from_main"], 4)
        apply_kwargs = c.submit(sd.takes, arg={"k": [1, 2]})
    assert await closure == 6
    assert await main_fn == 12
    assert await apply_kwargs in ids
    # Unregistering puts the worker back as it was and closes the interpreters.
    await c.unregister_worker_plugin(SubinterpreterPlugin().name)
    assert "subinterp" not in a.executors
    assert not set(ids) & live_ids()


@gen_cluster(
    client=True,
    nthreads=[("127.0.0.1", 2)],
    worker_kwargs={"plugins": {SubinterpreterPlugin(default=True)}},
)
async def test_default_executor_and_dask_own_tasks(c: Client, s: Any, a: Worker) -> None:
    ids = slot_ids(a)
    assert a.executors["default"] is a.executors["subinterp"]
    assert await c.submit(sd.interp_id, pure=False) in ids
    with annotate(executor="threads"):
        assert await c.submit(sd.interp_id, pure=False) == MAIN_ID
    # A graph with dask's own tasks (a list of dependencies, aliases): they run in main, the
    # user's functions in the slots.
    parts = [delayed(sd.where)(i) for i in range(4)]
    total = delayed(sum)([delayed(lambda r: r[0])(p) for p in parts])
    assert await c.compute(total) == sum(i * i for i in range(4))
    placed = await c.gather(c.compute(parts))
    assert {p[1] for p in placed} <= set(ids)
    # get_worker() works in tasks that run in main.
    with annotate(executor="threads"):
        assert await c.submit(sd.asks_for_its_worker, pure=False) == a.address


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_task_errors_and_retries(c: Client, s: Any, a: Worker, tmp_path: Path) -> None:
    await c.register_plugin(SubinterpreterPlugin())
    with sub():
        failing = c.submit(sd.fail, 3)
        flaky = c.submit(sd.flaky, str(tmp_path / "n"), 1, retries=1)
        too_flaky = c.submit(sd.flaky, str(tmp_path / "m"), 5, retries=1)
    with pytest.raises(sd.TaskFailed) as info:
        await failing
    assert (info.value.code, info.value.why) == (3, "the task failed")
    assert isinstance(info.value.__cause__, KeyError)
    tb = await failing.traceback()
    frames = traceback.extract_tb(tb)
    assert [f.name for f in frames][-2:] == ["fail", "_check"]
    assert frames[-1].filename == sd.__file__
    assert (await flaky)[0] == 2
    with pytest.raises(sd.TaskFailed, match="not yet"):
        await too_flaky
    # The worker goes on.
    with sub():
        assert await c.submit(sd.interp_id, pure=False) in slot_ids(a)


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_cannot_cross_fails_with_an_error_that_says_so(c: Client, s: Any, a: Worker) -> None:
    await c.register_plugin(SubinterpreterPlugin())
    lock = c.submit(sd.make_lock, pure=False)  # in main, kept in the worker's memory
    with sub():
        refused = c.submit(sd.imports_psutil, pure=False)
        not_loaded = c.submit(_psutil_pid(), pure=False)
        unpicklable_arg = c.submit(sd.takes, lock, pure=False)
        unpicklable_result = c.submit(sd.returns_a_generator, pure=False)
    with pytest.raises(CannotRunInSubinterpreter, match="does not load in subinterpreters"):
        await refused
    with pytest.raises(CannotRunInSubinterpreter, match="could not be loaded in a subinterp"):
        await not_loaded
    with pytest.raises(CannotRunInSubinterpreter, match="cannot be pickled"):
        await unpicklable_arg
    with pytest.raises(CannotRunInSubinterpreter, match="result cannot be pickled"):
        await unpicklable_result
    err = await refused.exception()
    assert "psutil" in str(err) and "executor='default'" in str(err), err
    assert a.status.name == "running"
    with sub():
        assert await c.submit(sd.interp_id, pure=False) in slot_ids(a)


def _psutil_pid() -> Any:
    import support_dask_psutil

    return support_dask_psutil.pid


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_functions_of_a_module_that_does_not_load_go_by_value(
    c: Client, s: Any, a: Worker
) -> None:
    # Like a test file or a script that imports distributed: the module does not load in a
    # subinterpreter, but its functions that do not need what it imports run there.
    import support_dask_psutil

    await c.register_plugin(SubinterpreterPlugin())
    with sub():
        futures = c.map(support_dask_psutil.square_and_where, range(4), pure=False)
    results = await c.gather(futures)
    assert [r[0] for r in results] == [0, 1, 4, 9]
    assert {r[1] for r in results} <= set(slot_ids(a))
    # Its classes too: what comes back is of the module's own class.
    with sub():
        point = c.submit(support_dask_psutil.make_point, 3, pure=False)
        bad_point = c.submit(support_dask_psutil.make_point, -1, pure=False)
    assert await point == support_dask_psutil.Point(3, 9)
    with pytest.raises(support_dask_psutil.PointError):
        await bad_point
    # And so do the functions of this test module (it imports pytest and distributed).
    with sub():
        here = c.submit(_in_this_module, 6, pure=False)
    assert await here == (36, True)


def _in_this_module(x: int) -> tuple[int, bool]:
    return sd.where(x)[0], sd.interp_id() != MAIN_ID


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_fallback_runs_them_in_main_with_a_warning(c: Client, s: Any, a: Worker) -> None:
    await c.register_plugin(SubinterpreterPlugin(fallback=True))
    with captured_logger("distributed.worker.subinterp_rs", level=30) as log:
        with sub():
            first = c.submit(sd.asks_for_its_worker, pure=False)
            psutil_pid = c.submit(_psutil_pid(), pure=False)
        assert await first == a.address
        assert await psutil_pid == os.getpid()
        with sub():
            second = c.submit(sd.asks_for_its_worker, pure=False)
        assert await second == a.address
    text = log.getvalue()
    assert text.count("asks_for_its_worker cannot run in a subinterpreter") == 1, text
    assert "support_dask_psutil.pid cannot run in a subinterpreter" in text, text
    with sub():
        assert await c.submit(sd.interp_id, pure=False) in slot_ids(a)


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2)])
async def test_cancel_running_and_pending_tasks(
    c: Client, s: Any, a: Worker, tmp_path: Path
) -> None:
    await c.register_plugin(SubinterpreterPlugin())
    started, release = tmp_path / "started", tmp_path / "release"
    with sub():
        running = c.submit(sd.block, str(started), str(release), pure=False)
        pending = [c.submit(sd.where, i, pure=False, key=f"pending-{i}") for i in range(3)]
    while not started.exists():
        await asyncio.sleep(0.01)
    # The worker's call stacks show the running task (its frames in main, not inside).
    stacks = await c.call_stack([running])
    assert running.key in stacks[a.address], stacks
    await c.cancel([running, *pending])
    assert running.cancelled() and all(f.cancelled() for f in pending)
    release.touch()
    # The slot that ran the cancelled task ends it and takes new ones.
    with sub():
        futures = c.map(sd.where, range(4), pure=False)
    assert [r[0] for r in await c.gather(futures)] == [0, 1, 4, 9]


@gen_cluster(client=True, nthreads=[("127.0.0.1", 2), ("127.0.0.1", 2)])
async def test_worker_closed_while_tasks_run(
    c: Client, s: Any, a: Worker, b: Worker, tmp_path: Path
) -> None:
    await c.register_plugin(SubinterpreterPlugin())
    a_ids, b_ids = slot_ids(a), slot_ids(b)
    started, release = tmp_path / "started", tmp_path / "release"
    with sub():
        fut = c.submit(
            sd.block, str(started), str(release), workers=[a.address], allow_other_workers=True
        )
    while not started.exists():
        await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(a.close())
    while a.status.name == "running":  # closing: the task's execution on a is cancelled
        await asyncio.sleep(0.01)
    release.touch()
    await closing
    # The task moved to the other worker; a's interpreters are closed, none leaked.
    assert await fut in b_ids
    assert a.status.name == "closed"
    live = live_ids()
    assert not set(a_ids) & live and set(b_ids) <= live


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_unsupported_distributed_fails_at_plugin_start(
    c: Client, s: Any, a: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distributed, "__version__", "2024.10.0")
    expected = (
        rf"supports distributed {sdask.OLDEST_DISTRIBUTED} to {sdask.NEWEST_TESTED_DISTRIBUTED}"
    )
    with pytest.raises(RuntimeError, match=expected):
        check_distributed()
    with pytest.raises(RuntimeError, match=r"this is distributed 2024\.10\.0: it is older"):
        await c.register_plugin(SubinterpreterPlugin())
    assert "subinterp" not in a.executors
    monkeypatch.undo()
    check_distributed()
    monkeypatch.delattr(distributed.worker, "_run_task_simple")
    with pytest.raises(RuntimeError, match=r"no distributed\.worker\._run_task_simple"):
        check_distributed()


@pytest.fixture
def old_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    """distributed claims a release older than the oldest supported (before the cluster
    of the test starts)."""
    monkeypatch.setattr(distributed, "__version__", "2024.10.0")


@gen_cluster(
    client=True,
    nthreads=[("127.0.0.1", 1)],
    worker_kwargs={"preload": ["subinterp_rs.dask"], "preload_argv": ["--subinterp-default"]},
)
async def test_a_preload_that_cannot_start_fails_every_task_with_why(
    c: Client, s: Any, a: Worker, old_distributed: None
) -> None:
    # distributed only logs a preload's error, and the worker starts: rather than running the
    # tasks meant for the subinterpreters in threads unnoticed, they fail with the reason.
    for ctx in (sub(), contextlib.nullcontext()):
        with ctx:
            fut = c.submit(sd.interp_id, pure=False)
        with pytest.raises(RuntimeError, match=r"did not start: .* this is distributed 2024\.10"):
            await fut
    with annotate(executor="threads"):
        assert await c.submit(sd.interp_id, pure=False) == MAIN_ID


# -- misuse ---------------------------------------------------------------------------------


def test_misuse() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SubinterpreterExecutor(0)
    with pytest.raises(TypeError, match="must be an int"):
        SubinterpreterExecutor(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="InterpreterConfig"):
        SubinterpreterExecutor(1, config={"gil": "own"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distributed uses that name"):
        SubinterpreterPlugin(executor="default")
    with pytest.raises(ValueError, match="must differ"):
        SubinterpreterPlugin(executor="x", threads="x")
    with pytest.raises(ValueError, match="non-empty"):
        SubinterpreterPlugin(executor="")
    with pytest.raises(TypeError, match="InterpreterConfig"):
        SubinterpreterPlugin(config="isolated")  # type: ignore[arg-type]
    executor = SubinterpreterExecutor(1, config=InterpreterConfig())
    executor.start()
    assert executor.submit(sd.burn, 10).result() == sd.burn(10)  # not a task: runs in main
    executor.shutdown()
    assert executor.interpreter_ids == []
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(sd.burn, 10)
    with pytest.raises(TypeError, match="worker preload"):
        asyncio.run(dask_setup.callback(object(), False, False, "subinterp"))  # type: ignore[misc]


def test_sys_current_frames_is_safe_while_slots_run_tasks() -> None:
    # CPython's sys._current_frames() walks every interpreter's threads and corrupts memory
    # when a subinterpreter runs code; distributed's profiler calls it every 10 ms.
    assert_ok(
        """
        import sys, threading
        from dask._task_spec import Task
        from distributed.worker import _run_task_simple
        from subinterp_rs.demo import count_primes
        from subinterp_rs.dask import SubinterpreterExecutor

        ex = SubinterpreterExecutor(2)
        ex.start()
        futures = [
            ex.submit(_run_task_simple, Task(f"k{i}", count_primes, 0, 40_000), {}, 0.0)
            for i in range(4)
        ]
        slots = {t.ident for t in threading.enumerate() if "Subinterpreter-Slot" in t.name}
        seen_busy = 0
        while not all(f.done() for f in futures):
            frames = sys._current_frames()
            assert threading.get_ident() in frames
            # A busy slot shows the main frame it called into its subinterpreter from.
            for ident in slots & set(frames):
                if "subinterp_rs" in frames[ident].f_code.co_filename:
                    seen_busy += 1
            sys._current_exceptions()
        results = [f.result() for f in futures]
        assert all(r["op"] == "task-finished" for r in results), results
        assert len({r["result"] for r in results}) == 1
        ex.shutdown()
        assert seen_busy > 0
        # Other main threads are listed too.
        done = threading.Event()
        waiter = threading.Thread(target=done.wait)
        waiter.start()
        assert waiter.ident in sys._current_frames()
        done.set()
        waiter.join()
        print("OK")
        """,
        timeout=120,
    )


# -- LocalCluster ---------------------------------------------------------------------------


def test_local_cluster_in_process_with_preload_options(tmp_path: Path) -> None:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            dashboard_address=None,
            preload=["subinterp_rs.dask"],
            preload_argv=["--subinterp-default"],
        ) as cluster,
        Client(cluster) as client,
    ):
        check_cluster(client, tmp_path, default=True)


def test_local_cluster_processes_with_plugins_option(tmp_path: Path) -> None:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            plugins={SubinterpreterPlugin()},
        ) as cluster,
        Client(cluster) as client,
    ):
        assert set(client.run(os.getpid).values()) != {os.getpid()}
        check_cluster(client, tmp_path, default=False)


# -- dask scheduler + dask worker ------------------------------------------------------------


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def test_dask_scheduler_and_worker_with_preload(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    scheduler_args = ["scheduler", "--host", "127.0.0.1", "--port", "0", *common]
    worker_args = [
        "worker",
        "--host",
        "127.0.0.1",
        "--nworkers",
        "1",
        "--nthreads",
        "2",
        *common,
        "--preload",
        "subinterp_rs.dask",
        "--subinterp-default",
    ]
    with _process(
        [*scheduler_args, "--scheduler-file", str(scheduler_file)], env, tmp_path / "scheduler.log"
    ) as scheduler:
        deadline = time.monotonic() + TIMEOUT
        while not scheduler_file.exists():
            assert scheduler.poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        # The address, not --scheduler-file: with that, click takes the first preload option
        # for the missing scheduler address.
        with (
            _process(
                [worker_args[0], address, *worker_args[1:]], env, tmp_path / "worker.log"
            ) as worker,
            Client(address, timeout=TIMEOUT) as client,
        ):
            try:
                client.wait_for_workers(1, timeout=TIMEOUT)
                check_cluster(client, tmp_path, default=True)
            except BaseException:
                print((tmp_path / "worker.log").read_text())
                raise
            client.shutdown()
            assert worker.wait(timeout=TIMEOUT) == 0, (tmp_path / "worker.log").read_text()
        log = (tmp_path / "worker.log").read_text()
        assert "Fatal Python error" not in log, log
        assert "task slots in subinterpreters" in log, log
