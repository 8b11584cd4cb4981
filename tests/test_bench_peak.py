"""bench/'s "% of peak" means what it says: no fastnn backend runs any workload above the machine's
roof, unless the figure is labelled effective (3x3 stride-1 convolutions counted at direct-
convolution flops, which Winograd does not all execute).

Each non-effective workload of bench/workloads.py runs on each compiled backend as the benchmark
runs it (same inputs, fresh outputs per call, an untimed first call), its best time of a few calls
giving the rate; the roof is bench/roofline.py's, measured once for the module. A figure above 100%
is re-measured (roof and kernel) before it fails: a roof measured while other processes competed is
too low. No torch timing; the workloads running torch models (fastnn.torch) are left out.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.serial  # timing-sensitive: run alone (pyproject.toml's markers)

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
harness = pytest.importorskip("harness")  # bench/ (not installed with the package)
report = pytest.importorskip("report")
roofline = pytest.importorskip("roofline")
workloads = pytest.importorskip("workloads")

# fastnn's own figures: not Winograd-counted, not the torch adapter's, not the NumPy-only GEMM baseline
CHECKED = [w for w in workloads.WORKLOADS if not w.effective and "fastnn.torch" not in w.group
           and set(w.contenders) & {"numba", "cython"}]


@pytest.fixture(scope="module")
def roof():
    return roofline.measure(fastnn.get_num_threads(), quick=True)


def _best_seconds(fn, calls):
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def test_fma_loop_is_measured_in_its_full_width_child():
    # the roof's FMA loop runs in a child process (Numba at the CPU's full vector width); a child that
    # fails would silently fall back to the in-process loop, at half the peak on Intel's AVX-512 cores
    gflops = roofline.fma_gflops_in_child(1, 3)
    assert gflops is not None and gflops > 0


def test_roof_lookup_takes_the_working_set_own_size():
    roof = {"compute_gflops": 100.0, "copy_gbytes": {str(1 << 20): 80.0, str(4 << 20): 60.0, str(64 << 20): 20.0},
            "memory_gbytes": {str(1 << 20): 90.0, str(4 << 20): 50.0, str(64 << 20): 55.0}}
    assert roofline.memory_roof(roof, 3 << 20) == (90.0, 1 << 20)  # the largest measured size below
    assert roofline.memory_roof(roof, 8 << 20) == (55.0, 4 << 20)  # never below what a larger set reached
    assert roofline.memory_roof(roof, 1 << 30) == (55.0, 64 << 20)
    assert roofline.memory_roof(roof, 1000) == (90.0, 1 << 20)


def test_report_flags_a_figure_above_the_roof():
    roof = {"compute_gflops": 100.0, "copy_gbytes": {str(1 << 20): 10.0}, "memory_gbytes": {str(1 << 20): 10.0}}
    relu = next(w for w in workloads.WORKLOADS if w.group.startswith("relu fwd "))
    conv = next(w for w in workloads.WORKLOADS if w.effective == 3 and w.kind == "gemm")
    fast = {"numba": {"stats": {"min": relu.bytes / 20e9}, "extra_info": {"correct": True}}}
    cells = report.row_cells(relu, fast, roof)
    assert cells["peak"] == pytest.approx(2.0) and cells["over"] and not cells["effective"]
    # an effective rate may pass 100% by Winograd's saving on that backend and kernel, not more
    at = {"cython": {"stats": {"min": conv.flops / 300e9}, "extra_info": {"correct": True}}}
    assert not report.row_cells(conv, at, roof)["over"]
    at["cython"]["stats"]["min"] /= 2
    assert report.row_cells(conv, at, roof)["over"]
    assert report.contender_info(conv, at, roof)["cython"]["peak_ceiling"] == 4.0
    five = next(w for w in workloads.WORKLOADS if w.effective == 5 and w.kind == "gemm")
    for backend, over in (("cython", False), ("numba", True)):  # Numba runs 5x5 by im2col + GEMM
        at = {backend: {"stats": {"min": five.flops / 500e9}, "extra_info": {"correct": True}}}
        assert report.row_cells(five, at, roof)["over"] is over


# A memory roof is itself a measurement: at DRAM sizes a copy or in-place update reaches a few percent
# less than the best multi-stream kernels on some runs (Adam on 1x10M read 103% of the 128 MiB roof
# in one fresh clone's make test, after three re-measurements). The report bugs this test exists for
# read 150-232%.
MEMORY_ROOF_SPREAD = 1.10


@pytest.mark.parametrize("workload", CHECKED, ids=[w.id for w in CHECKED])
def test_no_figure_above_peak(workload, roof):
    backends = [b for b in fastnn.available_backends() if b in workload.contenders and b != "numpy"
                and harness.skip_reason(workload, b) is None]
    if not backends:
        pytest.skip("no compiled backend runs this workload here")
    for backend in backends:
        calls = 3
        with fastnn.use_backend(backend):
            fn = harness.contender(workload, backend, workload.inputs(np.random.default_rng(workload.seed)))
            fn()  # the benchmark's untimed first call (compiles, faults pages in)
            for attempt in range(3):
                seconds = _best_seconds(fn, calls)
                _, unit, peak, size, ceiling = report.rate_of(workload, seconds, backend, roof)
                limit = 1.0 if size is None else MEMORY_ROOF_SPREAD
                print(f"{workload.group} [{backend}] attempt {attempt}: {100 * peak:.0f}% ({size}, {seconds * 1e3:.3f} ms)")
                if peak <= limit:
                    break
                # re-measure before failing: another process may have competed with the roof or the kernel
                roof = roofline.best_of(roof, roofline.measure(fastnn.get_num_threads(), quick=True))
                calls *= 3
            where = f"memory roof at {size >> 20} MiB" if size is not None else "compute peak"
            assert peak <= limit, (f"{workload.group} [{backend}]: {100 * peak:.0f}% of the {where} ({unit}, "
                                 f"{seconds * 1e3:.3f} ms): its traffic, flops or working set do not describe what runs")


def test_report_json_holds_every_workload(roof):
    """run.py saves the report's rows as JSON: every workload's cells serialize (numpy scalars in a
    workload's flops once made `make bench` fail after its passes)."""
    import json

    results = {b: {"stats": {"min": 1e-3}, "extra_info": {"correct": True}} for b in ("numpy", "cython", "torch")}
    cells = {w.group: report.row_cells(w, results, roof) for w in workloads.WORKLOADS}
    json.dumps(report.json_rows(cells))


def test_noise_indicators_from_cpu_times():
    """run.py's noise indicators (roofline.py's helpers): the cores other processes kept busy (not the
    load average, which also counts `make bench`'s warm-up that just ended) and the host's steal share."""
    before = dict.fromkeys(roofline.CPU_FIELDS, 0)
    after = dict(before, user=30, system=10, idle=50, steal=10)
    assert roofline.busy_cores(before, after, 2) == pytest.approx(2 * 50 / 100)
    assert roofline.steal_share(before, after) == pytest.approx(0.1)
    assert roofline.busy_cores(before, before, 2) == 0.0 and roofline.steal_share(before, before) == 0.0
    now = roofline.cpu_times()
    assert now is None or (set(now) == set(roofline.CPU_FIELDS) and min(now.values()) >= 0)
    busy = roofline.busy_before_run(2, seconds=0.05)
    assert busy is None or 0.0 <= busy <= 2.0
