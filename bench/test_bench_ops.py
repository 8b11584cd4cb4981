"""pytest-benchmark suite: one group per workload (bench/workloads.py), the contenders as ids.

Contenders of one group run back to back in this one process. Each test makes its own seeded
inputs, calls the contender once untimed (Numba compiles, pages fault in; this call's result is
checked against the NumPy reference), then times it: one call per round, as many rounds as fit in
FASTNN_BENCH_BUDGET seconds (default 0.3), at least FASTNN_BENCH_MIN_ROUNDS (default 3), so the
slow NumPy references stay affordable. `make bench` (run.py) sets both and prints the report.
"""
import os
import time

import fastnn
import numpy as np
import pytest

import harness
from workloads import WORKLOADS

CASES = [pytest.param(w, backend, id=f"{w.id}-{backend}") for w in WORKLOADS for backend in w.contenders]

BUDGET = float(os.environ.get("FASTNN_BENCH_BUDGET", "0.3"))
MIN_ROUNDS = int(os.environ.get("FASTNN_BENCH_MIN_ROUNDS", "3"))
MAX_ROUNDS = 1000

_reference = {}  # group -> snapshot of the numpy contender's result (only the current group is kept)


def _run_once(workload, backend):
    """Inputs, the contender's function and the snapshot of its untimed warm-up call."""
    inp = workload.inputs(np.random.default_rng(workload.seed))
    fn = harness.contender(workload, backend, inp)
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    if backend == "torch":
        result = harness.as_numpy(workload, result)
    return fn, harness.snapshot(result), seconds


def _reference_of(workload):
    if workload.group not in _reference:
        _reference.clear()
        if harness.skip_reason(workload, "numpy") is not None:
            return None
        try:
            with fastnn.use_backend("numpy"):
                _reference[workload.group] = _run_once(workload, "numpy")[1]
        except pytest.skip.Exception:  # e.g. fastnn.nn not there yet: no reference, still timed
            return None
    return _reference[workload.group]


@pytest.mark.parametrize("workload,backend", CASES)
def test_bench(benchmark, workload, backend):
    reason = harness.skip_reason(workload, backend)
    if reason:
        pytest.skip(reason)
    benchmark.group = workload.group
    benchmark.extra_info.update(group=workload.group, backend=backend, ops=list(workload.ops),
                                flops=float(workload.flops), bytes=float(workload.bytes), kind=workload.kind,
                                auto=workload.auto, threads=fastnn.get_num_threads())
    with fastnn.use_backend(backend if backend in fastnn.available_backends() else "auto"):
        fn, result, seconds = _run_once(workload, backend)
        if backend == "numba":  # the first call compiled (or loaded the cache): time a second for the estimate
            started = time.perf_counter()
            fn()
            seconds = time.perf_counter() - started
        if backend == "numpy":
            _reference.clear()
            _reference[workload.group] = result
            correct, error = True, 0.0
        else:
            try:
                reference = _reference_of(workload)
            except Exception as failure:  # a broken reference must not hide the contender's timing
                reference = None
                benchmark.extra_info["reference_error"] = repr(failure)
            correct, error = (None, None) if reference is None else harness.check(result, reference, workload.tol)
        benchmark.extra_info.update(correct=correct, max_error=error)
        rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET / max(seconds, 1e-6))))
        benchmark.pedantic(fn, rounds=rounds, iterations=1)
