"""An embedded plugin host: each plugin runs in an interpreter of its own.

What an isolated interpreter (the default, ``InterpreterConfig.isolated()``) gives a host:

* its own modules and globals: a plugin that monkeypatches ``json`` or defines globals
  changes nothing in the host or in other plugins;
* errors come back as ``ExecutionFailed`` (the exception's type name, message and
  traceback as text), and the plugin's interpreter stays usable;
* its own GIL: a CPU-bound plugin runs in parallel with the host and with other plugins;
* restrictions: no ``os.fork()``, no daemon threads.

``InterpreterConfig.legacy()`` (what ``Py_NewInterpreter()`` makes) still has separate
modules and globals, but shares the main GIL and allocator and allows fork and daemon threads.

This is isolation, not security: plugins share the process, its memory and its files, and can
do anything the host can (``os.system``, ``open``). Run truly untrusted code in another process.

    python examples/plugin_sandbox.py
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable

from subinterp_rs import ExecutionFailed, InterpreterConfig, Subinterpreter, interpreters

# Plugins: source text defining ``run(arg: str) -> str``, as a host would read from files.
PLUGINS = {
    "greeter": """
GREETING = "hello"
def run(arg):
    return f"{GREETING}, {arg}!"
""",
    "monkeypatcher": """
import json
json.dumps = lambda *args, **kwargs: "json.dumps was patched by a plugin"
def run(arg):
    return json.dumps({"arg": arg})
""",
    "crasher": """
def run(arg):
    settings = {"colour": "blue"}
    return settings[arg]          # KeyError for anything but "colour"
""",
}

SPIN = """
def run(arg):
    total = 0
    for i in range(int(arg)):
        total += i * i % 7
    return str(total)
"""


class Plugin:
    """A plugin loaded into an interpreter of its own."""

    def __init__(self, name: str, source: str, config: InterpreterConfig | None = None) -> None:
        self.name = name
        self.interp = Subinterpreter.create(config)
        self._results = interpreters.create_queue()
        # The queue is shareable: bind it into the plugin's __main__, then load the plugin.
        self.interp.prepare_main(_results=self._results)
        self.interp.exec(source)

    def run(self, arg: str) -> object:
        """``run(arg)`` inside the plugin's interpreter; its result comes back by the queue."""
        self.interp.prepare_main(_arg=arg)
        self.interp.exec("_results.put(run(_arg))")  # ExecutionFailed if run() raises
        return self._results.get(timeout=30)

    def close(self) -> None:
        self.interp.close()


def timed_in_threads(jobs: list[Callable[[], object]]) -> float:
    """Run each job in its own thread at once; seconds until all are done."""
    threads = [threading.Thread(target=job) for job in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> int:
    failures = 0
    plugins = {name: Plugin(name, source) for name, source in PLUGINS.items()}
    try:
        print("1. separate modules and globals")
        print(f"   greeter       -> {plugins['greeter'].run('world')!r}")
        print(f"   monkeypatcher -> {plugins['monkeypatcher'].run('x')!r}")
        host_json = json.dumps({"arg": "x"})
        print(f"   host json.dumps still works: {host_json}")
        failures += host_json != '{"arg": "x"}'
        try:
            plugins["monkeypatcher"].interp.exec("print(GREETING)")
        except ExecutionFailed as exc:
            print(f"   greeter's GREETING is not defined in the other plugin: {exc.excinfo.msg}")
        else:
            failures += 1

        print("2. errors come back as ExecutionFailed")
        try:
            plugins["crasher"].run("size")
        except ExecutionFailed as exc:
            print(f"   crasher raised {exc.excinfo.type.__name__}: {exc.excinfo.msg}")
            print("   the traceback, as text:")
            for line in exc.excinfo.formatted.rstrip().splitlines():
                print(f"   | {line}")
        else:
            failures += 1
        print(f"   and its interpreter still works: {plugins['crasher'].run('colour')!r}")
    finally:
        for plugin in plugins.values():
            plugin.close()

    print("3. isolated vs legacy: what the code inside may do")
    daemon = """
import threading, time
threading.Thread(target=time.sleep, args=(0.01,), daemon=True).start()
time.sleep(0.1)   # let it finish before the interpreter is closed
"""
    for config_name, config in [
        ("isolated", InterpreterConfig.isolated()),
        ("legacy", InterpreterConfig.legacy()),
    ]:
        with Subinterpreter.create(config) as si:
            try:
                si.exec(daemon)
                print(f"   {config_name:8}: daemon threads allowed")
                failures += config_name == "isolated"
            except ExecutionFailed as exc:
                print(f"   {config_name:8}: daemon threads refused: {exc.excinfo.msg}")
                failures += config_name == "legacy"
    # Only the isolated one is asked to fork: in a legacy interpreter it would really fork.
    fork = """
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""
    with Subinterpreter.create() as si:
        try:
            si.exec(fork)
            print("   isolated: os.fork() allowed")
            failures += 1
        except ExecutionFailed as exc:
            print(f"   isolated: os.fork() refused: {exc.excinfo.msg}")

    print("4. own GIL vs shared GIL: two CPU-bound plugins at once")
    work = "3000000"
    for config_name, config in [
        ("isolated", InterpreterConfig.isolated()),
        ("legacy", InterpreterConfig.legacy()),
    ]:
        pair = [Plugin(f"spin-{i}", SPIN, config) for i in range(2)]
        try:
            pair[0].run("10")  # warm up
            alone = timed_in_threads([functools.partial(pair[0].run, work)])
            both = timed_in_threads([functools.partial(p.run, work) for p in pair])
            print(f"   {config_name:8}: one alone {alone:.2f} s, two at once {both:.2f} s")
        finally:
            for plugin in pair:
                plugin.close()

    if failures:
        print(f"{failures} unexpected outcome(s)")
        return 1
    print("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
