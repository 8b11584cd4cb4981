"""pytest-benchmark suite: one group per workload (bench/workloads.py), the contenders as ids.

Contenders of one group run back to back in this one process. Each test makes its own seeded
inputs and calls the contender once untimed (Numba compiles, pages fault in; this call's result is
checked against the NumPy reference), then times it with pytest-benchmark's options: one call per
round, as many rounds as fit in --benchmark-max-time (estimated from that untimed call, so no
calibration calls are spent on slow references), at least --benchmark-min-rounds, after
--benchmark-warmup's warm-up rounds when it is on. `make bench` (run.py) picks the options and
prints the report; a plain `pytest` run prints it after pytest-benchmark's tables.

With --fastnn-memory (run.py's memory pass) nothing is timed: after the warm-up, one call's peak
extra memory is measured (harness.peak_extra_bytes).
"""
import math
import time

import fastnn
import numpy as np
import pytest

import harness
from workloads import WORKLOADS

CASES = [pytest.param(w, backend, id=f"{w.id}-{backend}") for w in WORKLOADS for backend in w.contenders]

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


def _rounds(benchmark, seconds):
    """(rounds, warm-up rounds) as pytest-benchmark's own mode picks them, from one call's time:
    enough rounds for --benchmark-max-time, at least --benchmark-min-rounds; with --benchmark-warmup
    on, --benchmark-warmup-iterations rounds, within max-time (the fixture's settings, which a
    @pytest.mark.benchmark(...) on a test would override)."""
    seconds = max(seconds, 1e-7)
    rounds = max(benchmark._min_rounds, math.ceil(benchmark._max_time / seconds))
    warmup = min(rounds, int(benchmark._warmup), math.ceil(benchmark._max_time / seconds)) if benchmark._warmup else 0
    return rounds, warmup


@pytest.mark.parametrize("workload,backend", CASES)
def test_bench(benchmark, bench_session, workload, backend):
    reason = harness.skip_reason(workload, backend)
    if reason:
        pytest.skip(reason)
    benchmark.group = workload.group
    benchmark.extra_info.update(group=workload.group, backend=backend, ops=list(workload.ops),
                                flops=float(workload.flops), bytes=float(workload.bytes), kind=workload.kind,
                                working_set=float(workload.touched), effective=workload.effective,
                                auto=workload.auto, threads=fastnn.get_num_threads())
    with fastnn.use_backend(backend if backend in fastnn.available_backends() else "auto"):
        bench_session.phase("warm-up")
        fn, result, seconds = _run_once(workload, backend)
        if bench_session.measuring_memory:
            bench_session.phase("memory")
            bench_session.memory.setdefault(workload.group, {})[backend] = harness.peak_extra_bytes(fn)
            return
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
        rounds, warmup_rounds = _rounds(benchmark, seconds)
        bench_session.phase("measure", rounds=rounds, warmup_rounds=warmup_rounds, seconds=seconds)
        benchmark.pedantic(fn, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
