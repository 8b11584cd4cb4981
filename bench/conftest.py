"""Benchmark session: one thread count for every contender, fastnn's columns in any pytest-benchmark
run of this suite, the memory pass, and progress events for run.py.

pytest-benchmark's own options rule the timing (--benchmark-min-rounds, --benchmark-max-time,
--benchmark-warmup, ...) and its outputs (--benchmark-json, --benchmark-autosave,
--benchmark-compare[-fail], --benchmark-histogram). On top of its tables, the terminal summary
prints fastnn's (speedups, rate, % of peak, correctness), and every JSON it writes gets a "fastnn"
section: the roofline, the derived columns per group, what was not measured and why.
"""
import json
import os

import pytest

import fastnn
from fastnn import _ops
import harness  # noqa: F401 (imported here first: test modules share this instance)
import report
import roofline

_state = None  # this run's Session (hooks such as pytest_runtest_logstart get no config)


def pytest_addoption(parser):
    group = parser.getgroup("fastnn", "fastnn benchmarks")
    group.addoption("--fastnn-threads", type=int, default=None,
                    help="thread count of every contender (default: fastnn's, the usable cores)")
    group.addoption("--fastnn-roofline", default="measure", metavar="measure|off|PATH",
                    help="the roofline for %% of peak: measured before the first test (default), off, or "
                         "loaded from a JSON file (run.py measures it once for all passes)")
    group.addoption("--fastnn-memory", metavar="PATH", default=None,
                    help="memory pass: instead of timing, measure each contender's peak extra memory for one "
                         "call (after the warm-up) and write {group: {backend: bytes}} to PATH; implies "
                         "--benchmark-disable. Run it with MALLOC_MMAP_THRESHOLD_=131072 (run.py does)")
    group.addoption("--fastnn-family", action="append", default=None, metavar="FAMILY",
                    help="run only the workloads of this op family (conv, pool, batchnorm, activations, linear, "
                         "losses, optim, training); repeatable. run.py's memory pass runs one process per family")
    group.addoption("--fastnn-progress-fd", type=int, default=None, metavar="FD",
                    help="write progress events (JSON lines) to this file descriptor; the report is then "
                         "left to the caller (run.py)")


class Session:
    def __init__(self, config):
        self.memory_path = config.getoption("fastnn_memory")
        self.memory = {}  # group -> backend -> bytes
        self.not_measured = []  # skipped and failed tests
        self.roof = None
        self._fd = config.getoption("fastnn_progress_fd")

    @property
    def measuring_memory(self):
        return self.memory_path is not None

    @property
    def driven(self):
        return self._fd is not None

    def event(self, **fields):
        if self._fd is not None:
            os.write(self._fd, (json.dumps(fields) + "\n").encode())

    def phase(self, name, **fields):
        self.event(event="phase", phase=name, **fields)


@pytest.fixture
def bench_session():
    return _state


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's pytest_configure reads --benchmark-disable
def pytest_configure(config):
    global _state
    if config.getoption("fastnn_threads"):
        fastnn.set_num_threads(config.getoption("fastnn_threads"))
    try:
        import torch

        torch.set_num_threads(fastnn.get_num_threads())
    except ImportError:
        pass
    _state = Session(config)
    if _state.measuring_memory:
        config.option.benchmark_disable = True
        config.addinivalue_line("filterwarnings", "ignore:Benchmark fixture was not used")  # nothing is timed


def workload_family(workload):
    """The op family a workload belongs to (the GEMM baseline with linear, whole steps as training)."""
    if "train step" in workload.group:
        return "training"
    return _ops.FAMILY_OF[workload.ops[0]] if workload.ops else "linear"


def pytest_collection_modifyitems(config, items):
    families = config.getoption("fastnn_family")
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        workload, backend = params.get("workload"), params.get("backend")
        unwanted = workload is not None and (
            (families and workload_family(workload) not in families)
            or (_state.measuring_memory and backend == "numpy"))  # the memory column: fastnn's backends and torch
        (drop if unwanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session):
    config, state = session.config, _state
    state.event(event="collected", total=len(session.items))
    bench = getattr(config, "_benchmarksession", None)
    where = config.getoption("fastnn_roofline")
    if (where == "off" or state.measuring_memory or not session.items or config.option.collectonly
            or bench is None or bench.disabled or bench.skip):
        return
    if where == "measure":
        state.phase("roofline")
        state.roof = roofline.measure(fastnn.get_num_threads())
    else:
        state.roof = roofline.load(where)


def pytest_runtest_logstart(nodeid):
    _state.event(event="start", test=nodeid.split("::")[-1])


def pytest_runtest_logfinish(nodeid):
    _state.event(event="end", test=nodeid.split("::")[-1])


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
    elif report.failed:
        reason = report.longreprtext.strip().splitlines()[-1][:300] if report.longreprtext else "failed"
    else:
        return
    entry = {"test": report.nodeid.split("::")[-1], "outcome": report.outcome, "reason": reason}
    _state.not_measured.append(entry)
    _state.event(event="outcome", **entry)


def _benchmarks(config):
    """This session's benchmarks as pytest-benchmark's JSON dicts (those that raised left out, as in its JSON)."""
    bench = getattr(config, "_benchmarksession", None)
    if bench is None:
        return []
    return [b.as_dict(include_data=False) for b in bench.benchmarks if b and not b.has_error]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """fastnn's columns in every JSON pytest-benchmark writes (--benchmark-json, --benchmark-autosave,
    --benchmark-save): per benchmark, extra_info["fastnn"] (its speedups over NumPy and torch, rate,
    fraction of peak); per group, the report's row; the roofline and what was not measured."""
    state = _state
    by_group = report.group_results(output_json["benchmarks"])
    for group in by_group.values():
        if group["results"]:
            info = report.contender_info(group["workload"], group["results"], state.roof)
            for backend, bench in group["results"].items():
                bench["extra_info"]["fastnn"] = info[backend]
    output_json["fastnn"] = {"roofline": state.roof, "threads": fastnn.get_num_threads(),
                             "rows": report.json_rows(report.rows(by_group, state.roof)),
                             "not_measured": state.not_measured}


@pytest.hookimpl(wrapper=True)  # after pytest-benchmark's tables, even when --benchmark-compare-fail raises
def pytest_terminal_summary(terminalreporter, config):
    try:
        return (yield)
    finally:
        if not _state.driven:
            for line in _summary_lines(config, _state):
                terminalreporter.write_line(line)


def _summary_lines(config, state):
    if state.measuring_memory:
        lines = [f"{group}: " + ", ".join(f"{b} {n / 2 ** 20:.1f}" for b, n in by_backend.items()) + " MiB"
                 for group, by_backend in state.memory.items()]
        return ["", "peak extra memory of one call:"] + lines if lines else []
    benchmarks = _benchmarks(config)
    if not benchmarks:
        return []
    by_group = report.group_results(benchmarks)
    lines = ["", "fastnn " + "=" * 90] + (roofline.describe(state.roof) if state.roof else [])
    return lines + report.table_lines(by_group, state.not_measured, state.roof) + report.notes_lines(by_group, [])


def pytest_sessionfinish(session):
    if _state.memory_path:
        with open(_state.memory_path, "w") as f:
            json.dump({"memory": _state.memory, "not_measured": _state.not_measured}, f, indent=1)
