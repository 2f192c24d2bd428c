"""Logging and warnings of subinterpreters forwarded to main (subinterp_rs.logs, issue #19
item 3). Each case runs in a child process: forwarding starts one queue and one thread per
process."""

from __future__ import annotations

import textwrap

import pytest
from _helpers import assert_ok
from subinterp_rs import Subinterpreter, logs

_PRELUDE = """
import logging
import threading
import warnings

from subinterp_rs import Subinterpreter, logs
from subinterp_rs.futures import InterpreterPoolExecutor


class Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.guard = threading.Lock()

    def emit(self, record):
        with self.guard:
            self.records.append(record)

    def named(self, name):
        return [r for r in self.records if r.name == name]


keep = Keep()
logging.getLogger().addHandler(keep)
logging.getLogger().setLevel(logging.INFO)
"""


def run(body: str) -> None:
    assert_ok(_PRELUDE + textwrap.dedent(body))


def test_executor_records_reach_main_handlers() -> None:
    run(
        """
        logging.getLogger("app.verbose").setLevel(logging.DEBUG)
        fmt = logging.Formatter("%(interpreter_id)s|%(name)s|%(levelname)s|%(message)s")

        def work(x):
            import logging
            log = logging.getLogger("app.work")
            log.info("working on %d", x)
            log.debug("not wanted: main's level is INFO")
            logging.getLogger("app.verbose").debug("wanted: DEBUG there")
            try:
                1 / x
            except ZeroDivisionError:
                log.exception("failed on %r", x)
            return x

        with InterpreterPoolExecutor(max_workers=2, forward_logging=True) as pool:
            assert list(pool.map(work, [0, 1, 2])) == [0, 1, 2]
        work_records = keep.named("app.work")
        assert sorted(r.getMessage() for r in work_records) == [
            "failed on 0", "working on 0", "working on 1", "working on 2"], work_records
        assert len(keep.named("app.verbose")) == 3
        failed = [r for r in work_records if r.levelno == logging.ERROR]
        assert len(failed) == 1 and "ZeroDivisionError" in failed[0].exc_text
        main_id = Subinterpreter.main().id
        for r in work_records:
            assert isinstance(r.interpreter_id, int) and r.interpreter_id != main_id
            assert r.threadName.startswith("InterpreterPoolExecutor"), r.threadName
            assert r.funcName == "work" and r.lineno > 0
            line = fmt.format(r)
            assert line.startswith(f"{r.interpreter_id}|app.work|"), line
        assert "ZeroDivisionError" in logging.Formatter().format(failed[0])
        print("OK")
        """
    )


def test_records_just_before_close_are_not_lost() -> None:
    run(
        """
        for _ in range(3):
            keep.records.clear()
            si = Subinterpreter.create(forward_logging=True)
            si.exec(
                "import logging\\n"
                "for i in range(2000):\\n"
                "    logging.getLogger('burst').warning('r%d', i)\\n"
            )
            si.close()
            got = [r.getMessage() for r in keep.named("burst")]
            assert got == [f"r{i}" for i in range(2000)], (len(got), got[:3], got[-3:])
        assert logs.dropped() == 0
        print("OK")
        """
    )


def test_context_manager_and_asyncio_pool() -> None:
    run(
        """
        import asyncio
        from subinterp_rs import aio

        def hello(n):
            import logging
            logging.getLogger("aio").warning("hello %d", n)

        async def main():
            async with aio.AsyncInterpreterPool(max_workers=2) as pool:
                await asyncio.gather(*(pool.run(hello, i) for i in range(4)))

        asyncio.run(main())  # not forwarding: nothing arrives
        with Subinterpreter.create() as si:
            si.call(hello, 9)
        assert keep.named("aio") == []
        with logs.forward_logging():
            asyncio.run(main())
            with Subinterpreter.create() as si:
                si.call(hello, 9)
        assert sorted(r.getMessage() for r in keep.named("aio")) == [
            "hello 0", "hello 1", "hello 2", "hello 3", "hello 9"]
        print("OK")
        """
    )


def test_warnings_follow_main_filters() -> None:
    run(
        """
        shown = []
        warnings.showwarning = lambda m, c, f, l, file=None, line=None: shown.append((str(m), c))
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="ignored")
        warnings.filterwarnings("error", category=ResourceWarning)

        def warn():
            import warnings
            warnings.warn("careful", DeprecationWarning)
            warnings.warn("ignored here too", UserWarning)
            try:
                warnings.warn("an error there", ResourceWarning)
            except ResourceWarning:
                return "raised"
            return "not raised"

        with Subinterpreter.create(forward_logging=True) as si:
            assert si.call(warn) == "raised"
        assert shown == [("careful", DeprecationWarning)], shown
        # logging.captureWarnings in main: they become records of py.warnings.
        logging.captureWarnings(True)
        with Subinterpreter.create(forward_logging=True) as si:
            si.call(warn)
        assert [r.getMessage() for r in keep.named("py.warnings")][0].find("careful") > 0
        print("OK")
        """
    )


def test_a_flood_is_bounded_counted_and_never_blocks() -> None:
    # 4 interpreters in 2 threads log 3000 records each into a queue of 50: the workers
    # finish (nothing waits), and every record is either delivered or counted as dropped.
    run(
        """
        def flood(n):
            import logging
            log = logging.getLogger("flood")
            for i in range(n):
                log.warning("f%d", i)
            return n

        with logs.forward_logging(bound=50):
            with InterpreterPoolExecutor(max_workers=2) as pool:
                assert sum(pool.map(flood, [3000] * 4)) == 12000
        delivered = len(keep.named("flood"))
        reports = keep.named("subinterp_rs.logs")
        assert logs.dropped() > 0 and reports, (delivered, logs.dropped())
        assert delivered + logs.dropped() == 12000, (delivered, logs.dropped())
        assert "dropped" in reports[0].getMessage()
        # Forwarding goes on after a flood.
        with Subinterpreter.create(forward_logging=True) as si:
            si.call(flood, 3)
        assert len(keep.named("flood")) == delivered + 3
        print("OK")
        """
    )


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="forward_logging must be a bool"):
        Subinterpreter.create(forward_logging="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bound must be at least 1"):
        logs.forward_logging(bound=0).__enter__()
    with pytest.raises(TypeError, match="bound must be an int"):
        logs.forward_logging(bound=2.5).__enter__()  # type: ignore[arg-type]
