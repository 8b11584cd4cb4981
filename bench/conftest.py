"""Benchmark session setup: one thread count for every contender; what was not measured, and why."""
import json
import os

import fastnn

if os.environ.get("FASTNN_BENCH_THREADS"):
    fastnn.set_num_threads(int(os.environ["FASTNN_BENCH_THREADS"]))

try:
    import torch

    torch.set_num_threads(fastnn.get_num_threads())
except ImportError:
    pass

_not_measured = []  # skipped and failed tests, for run.py's report


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
    elif report.failed:
        reason = report.longreprtext.strip().splitlines()[-1][:300] if report.longreprtext else "failed"
    else:
        return
    _not_measured.append({"test": report.nodeid.split("::")[-1], "outcome": report.outcome, "reason": reason})


def pytest_sessionfinish(session):
    path = os.environ.get("FASTNN_BENCH_SKIPS")
    if path:
        with open(path, "w") as f:
            json.dump(_not_measured, f, indent=1)
