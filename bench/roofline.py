"""The machine's roofline: fp32 compute peak and memory bandwidth by working set.

The compute peak is the fastest of several sgemms (NumPy's, scipy's, one per thread, torch.mm) and
a plain FMA throughput loop (`fma_gflops`): where OpenBLAS runs its Haswell kernel on an AVX-512
machine (OPENBLAS_CORETYPE=Haswell) and torch's BLAS takes AVX2 paths on AMD, every sgemm runs at
half the machine's peak, and fastnn's own AVX-512 kernels (Cython's direct 7x7 convolution) pass it.

Bandwidth is measured at working sets of 1, 2, 4, ..., 256 MiB (from L2 through L3 to DRAM) with
three kernels, each counting the bytes its source code reads plus writes, one contiguous slice per
thread: a copy (`np.copyto(dst, src)`: 8 bytes per element), an in-place update
(`np.add(a, b, out=a)`: 12 bytes per element) and an in-place update of 4 arrays, 3 of them written
(Adam's pattern, 28 bytes per element, compiled by Numba). The memory roof at a size is the fastest
of the three: a copy's destination is written without being read, and where the CPU reads it anyway
(write-allocate) the copy moves 12 bytes for the 8 it counts, which an in-place update does not, so
the copy alone would let in-place workloads pass 100%; and a core's DRAM bandwidth grows with the
streams it has in flight, so optimizer steps (5-7 streams) passed copy and update by 4-8% (session
11's "optim adam step 1x10M" at 104%, session 12's "sgd_momentum 1x10M" at 108%).

A memory-bound workload is compared with the roof at its own working set (the distinct bytes it
touches per call, `Workload.touched`), never with another working set: a 32 MiB working set that
stays in cache held against a 64 MiB copy reads as 232% of peak.
"""
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

COPY_SIZES_MIB = tuple(1 << i for i in range(9))  # 1 .. 256 MiB


def _best_time(fn, samples):
    fn()
    best = math.inf
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sgemm_gflops(threads, samples, n=2048):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    with threadpool_limits(threads, user_api="blas"):
        seconds = _best_time(lambda: np.matmul(a, b, out=c), samples)
    return 2 * n ** 3 / seconds / 1e9


def scipy_sgemm_gflops(threads, samples, n=2048):
    """scipy's BLAS (a library of its own in the wheels): Numba's np.dot and fastnn's Cython kernels
    call it through scipy.linalg.cython_blas, so their GEMMs run at its speed, not NumPy's."""
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    c = np.zeros((n, n), np.float32, order="F")
    with threadpool_limits(threads, user_api="blas"):
        seconds = _best_time(lambda: blas.sgemm(1.0, a, b, c=c, overwrite_c=True), samples)
    return 2 * n ** 3 / seconds / 1e9


def parallel_sgemm_gflops(threads, samples, n=512, products=4):
    """Independent single-threaded GEMMs, one per thread, as fastnn's kernels run theirs (per image
    or per block, one BLAS thread each): no BLAS-internal synchronization, so on a loaded machine
    often well above a multi-threaded GEMM. The faster of NumPy's and scipy's BLAS."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    best = 0.0
    libraries = [("numpy", None)]
    try:
        from scipy.linalg import blas

        libraries.append(("scipy", blas))
    except ImportError:
        pass
    for _, blas in libraries:
        jobs = []
        for _ in range(threads):
            a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
            b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
            c = np.zeros((n, n), np.float32, order="F")
            if blas is None:
                jobs.append(lambda a=a, b=b, c=c: [np.matmul(a, b, out=c) for _ in range(products)])
            else:
                jobs.append(lambda a=a, b=b, c=c: [blas.sgemm(1.0, a, b, c=c, overwrite_c=True) for _ in range(products)])
        with threadpool_limits(1, user_api="blas"):
            seconds = _best_time(lambda: _on_threads(lambda job: job(), jobs), samples)
        best = max(best, 2 * n ** 3 * products * threads / seconds / 1e9)
    return best


_fma_kernel = None


FMA_CHAINS, FMA_STEPS = 12, 48


def _compile_fma_kernel():
    """FMA_CHAINS independent multiply-add chains of FMA_STEPS steps per element, vectorized across
    elements by LLVM (`contract` only: reassociation would merge the chains): enough FMAs in flight
    to fill both FMA pipes through their latency; one load and one store per 1152 flops. The steps
    are written out (generated source): LLVM vectorizes innermost loops only, so a loop over the
    steps would stay scalar. Measured on a Zen 5 (2 cores): 8 chains 433, 12 chains 465, 16 chains
    468 GFLOP/s. 48 steps, not 16: the chains' 12 starting adds and 11 final adds share the FMA
    ports on Intel's AVX-512 cores (2-core Emerald Rapids, the two alternated: 16 steps 228-265,
    48 steps 283-308 GFLOP/s)."""
    from numba import njit

    chains = [f"a{j}" for j in range(FMA_CHAINS)]
    lines = ["def fma_chains(x, y, repeats):",
             "    c = np.float32(0.5)",
             "    for _ in range(repeats):",
             "        for i in range(x.shape[0]):",
             "            v = x[i]"]
    lines += [f"            {a} = v + np.float32({j})" for j, a in enumerate(chains)]
    lines += [f"            {a} = {a} * v + c" for _ in range(FMA_STEPS) for a in chains]
    lines += [f"            y[i] = {' + '.join(chains)}"]
    namespace = {"np": np}
    exec("\n".join(lines), namespace)
    return njit(fastmath={"contract"}, nogil=True)(namespace["fma_chains"])


FMA_FLOPS_PER_ELEMENT = FMA_CHAINS * FMA_STEPS * 2


def fma_gflops(threads, samples):
    """fp32 multiply-add throughput of a compiled loop (`_fma_gflops_here`), measured in a child
    process whose Numba compiles at the CPU's full vector width: LLVM tunes Intel's AVX-512 server
    cores to prefer 256-bit vectors, half their FMA peak (2-core Emerald Rapids, session 23: 154
    GFLOP/s, 253 at full width, torch.mm 255). The child turns that tuning off (`-prefer-256-bit`
    after the host's features); fastnn's own Numba kernels keep LLVM's choice. Measured here, at
    LLVM's width, if the child fails."""
    measured = fma_gflops_in_child(threads, samples)
    return measured if measured is not None else _fma_gflops_here(threads, samples)


def fma_gflops_in_child(threads, samples):
    """fma_gflops's child measurement, or None if the child failed."""
    import llvmlite.binding

    features = llvmlite.binding.get_host_cpu_features().flatten() + ",-prefer-256-bit"
    code = f"import roofline; print(roofline._fma_gflops_here({threads}, {samples}))"
    child = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent,
                           env=dict(os.environ, NUMBA_CPU_FEATURES=features), capture_output=True, text=True)
    return float(child.stdout.split()[-1]) if child.returncode == 0 else None


def _fma_gflops_here(threads, samples, n=4096, repeats=200):
    """fp32 multiply-add throughput of a compiled loop, one L1-resident slice per thread."""
    global _fma_kernel
    if _fma_kernel is None:
        _fma_kernel = _compile_fma_kernel()
    rng = np.random.default_rng(0)
    parts = [(rng.random(n, dtype=np.float32) * np.float32(0.5), np.empty(n, np.float32)) for _ in range(threads)]
    _fma_kernel(*parts[0], 1)  # compiles (or loads the cache)
    return (FMA_FLOPS_PER_ELEMENT * n * repeats * threads
            / _best_time(lambda: _on_threads(lambda part: _fma_kernel(*part, repeats), parts), samples) / 1e9)


def torch_sgemm_gflops(threads, samples, n=2048):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    return 2 * n ** 3 / _best_time(lambda: torch.mm(a, b, out=c), samples) / 1e9


def copy_gbytes(working_set, threads, samples):
    """np.copyto bandwidth (bytes read + written per second), one contiguous slice per thread."""
    n = working_set // 2 // 4
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    repeats = max(1, (128 << 20) // working_set)  # ~128 MiB of traffic per sample

    def work(part):
        for _ in range(repeats):
            np.copyto(*part)

    return 2 * n * 4 * repeats / _best_time(lambda: _on_threads(work, parts), samples) / 1e9


def update_gbytes(working_set, threads, samples):
    """np.add(a, b, out=a) bandwidth (a and b read, a written: 12 bytes per element), one slice per thread."""
    n = working_set // 2 // 4
    a, b = np.ones(n, np.float32), np.full(n, 1e-30, np.float32)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(a[lo:hi], b[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    repeats = max(1, (128 << 20) // working_set)

    def work(part):
        for _ in range(repeats):
            np.add(part[0], part[1], out=part[0])

    return 3 * n * 4 * repeats / _best_time(lambda: _on_threads(work, parts), samples) / 1e9


_streams_kernel = None


def _compile_streams_kernel():
    """Adam's traffic: 4 arrays read, 3 written back per element (28 bytes), a compiled loop."""
    from numba import njit

    def streams(p, g, m, v, repeats):
        tiny = np.float32(1e-30)
        for _ in range(repeats):
            for i in range(p.shape[0]):
                gi = g[i]
                mi = m[i] + gi
                vi = v[i] + gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] - (mi + vi) * tiny
    return njit(nogil=True)(streams)


def streams_gbytes(working_set, threads, samples):
    """Bandwidth of an in-place update of 4 arrays, 3 of them written (Adam's 28 bytes per element),
    one contiguous slice of each per thread."""
    global _streams_kernel
    if _streams_kernel is None:
        _streams_kernel = _compile_streams_kernel()
    n = working_set // 4 // 4
    arrays = [np.zeros(n, np.float32), np.full(n, 1e-30, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)]
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [[a[lo:hi] for a in arrays] for lo, hi in zip(bounds[:-1], bounds[1:])]
    repeats = max(1, (128 << 20) // working_set)
    _streams_kernel(*parts[0], 1)  # compiles

    return 28 * n * repeats / _best_time(lambda: _on_threads(lambda part: _streams_kernel(*part, repeats), parts),
                                         samples) / 1e9


_pool = None


def _on_threads(work, parts):
    """work(part) for each part, one part per thread (a pool kept across samples: a sample of a
    millisecond must not pay for starting threads)."""
    global _pool
    if len(parts) == 1:
        return work(parts[0])
    if _pool is None or _pool._max_workers < len(parts):
        _pool = concurrent.futures.ThreadPoolExecutor(len(parts))
    for future in [_pool.submit(work, part) for part in parts]:
        future.result()


# Whether other work competed with a run (the report's noise indicators, from /proc/stat).
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_times():
    """The machine's CPU time counters (/proc/stat's first line, clock ticks) by CPU_FIELDS, or None."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    return dict(zip(CPU_FIELDS, map(int, fields[1:1 + len(CPU_FIELDS)])))


def busy_cores(before, after, cores):
    """Cores' worth of busy time between two cpu_times() samples (0 if no time passed)."""
    total = sum(after.values()) - sum(before.values())
    idle = after["idle"] + after["iowait"] - before["idle"] - before["iowait"]
    return cores * (total - idle) / total if total > 0 else 0.0


def steal_share(before, after):
    """The share of CPU time between two cpu_times() samples that a virtual machine's host gave to
    others while this machine wanted to run (steal)."""
    total = sum(after.values()) - sum(before.values())
    return (after["steal"] - before["steal"]) / total if total > 0 else 0.0


def busy_before_run(cores, seconds=1.0):
    """Other processes' CPU use, measured while this one sleeps. Not the load average: it also counts
    processes that just ended (`make bench`'s warm-up: 1.6 on 2 cores right after it, all of it ours)."""
    before = cpu_times()
    if before is None:
        return None
    time.sleep(seconds)
    return busy_cores(before, cpu_times(), cores)


def measure(threads, quick=False):
    """The roofline at `threads`. Many short samples, best kept: the benchmark keeps each contender's
    fastest round, so the roof must get as many chances at a moment when no other process competes
    (on a loaded machine a roof from a few long samples is too low, and the % of peak overstated)."""
    samples, short = (3, 15) if quick else (7, 41)
    sizes = [mib << 20 for mib in COPY_SIZES_MIB]
    copy = {str(s): copy_gbytes(s, threads, short) for s in sizes}
    update = {str(s): update_gbytes(s, threads, short) for s in sizes}
    streams = {str(s): streams_gbytes(s, threads, short) for s in sizes}
    gemms = {"numpy_sgemm_gflops": sgemm_gflops(threads, samples),
             "scipy_sgemm_gflops": scipy_sgemm_gflops(threads, samples),
             "parallel_sgemm_gflops": parallel_sgemm_gflops(threads, short, products=1),
             "torch_sgemm_gflops": torch_sgemm_gflops(threads, samples),
             "fma_gflops": fma_gflops(threads, short)}
    return {"threads": threads, "compute_gflops": max(v for v in gemms.values() if v), **gemms,
            "copy_gbytes": copy, "update_gbytes": update, "streams_gbytes": streams,
            "memory_gbytes": {s: max(copy[s], update[s], streams[s]) for s in copy}}


def best_of(*roofs):
    """The highest value of each measurement over several rooflines of one machine (a roof measured
    while other processes competed is too low, which would overstate the % of peak)."""
    roofs = [r for r in roofs if r]
    if not roofs:
        return None
    out = dict(roofs[0])
    for key in ("compute_gflops", "numpy_sgemm_gflops", "scipy_sgemm_gflops", "parallel_sgemm_gflops",
                "torch_sgemm_gflops", "fma_gflops"):
        values = [r[key] for r in roofs if r.get(key)]
        out[key] = max(values) if values else None
    for key in ("copy_gbytes", "update_gbytes", "streams_gbytes", "memory_gbytes"):
        if all(key in r for r in roofs):  # (results saved before a kernel was added lack it)
            out[key] = {s: max(r[key][s] for r in roofs) for s in roofs[0][key]}
    return out


def load(path):
    return json.loads(Path(path).read_text())


def memory_roof(roof, working_set):
    """(GB/s, size): the memory roof measured at the largest working set <= `working_set` (the
    smallest measured one below it). Bandwidth only falls as the working set grows, so this roof is
    at least as high as one at the workload's exact working set: the % of peak is never overstated."""
    table = roof.get("memory_gbytes") or roof["copy_gbytes"]  # (results saved before the update kernel)
    sizes = sorted(int(s) for s in table)
    size = max((s for s in sizes if s <= working_set), default=sizes[0])
    # what a larger working set reached, a smaller one can reach too: a noisy dip at one size (another
    # process's burst) must not lower the roof there
    return max(table[str(s)] for s in sizes if s >= size), size


def describe(roof):
    """Two lines for the report header."""
    parts = [f"{roof[key]:.0f} ({name})" for key, name in
             (("numpy_sgemm_gflops", "numpy"), ("scipy_sgemm_gflops", "scipy's BLAS, which fastnn calls"),
              ("parallel_sgemm_gflops", "one single-threaded GEMM per thread"), ("torch_sgemm_gflops", "torch.mm"),
              ("fma_gflops", "an FMA loop"))
             if roof.get(key)]
    return [f"roofline ({roof['threads']} threads): compute peak {roof['compute_gflops']:.0f} GFLOP/s, the fastest of "
            + ", ".join(parts),
            "memory bandwidth (bytes read + written) by working set, copy / in-place update / 7 streams: "
            + ", ".join(f"{int(s) >> 20} MiB {gb:.0f}/{roof.get('update_gbytes', {}).get(s, float('nan')):.0f}"
                        f"/{roof.get('streams_gbytes', {}).get(s, float('nan')):.0f}"
                        for s, gb in roof["copy_gbytes"].items()) + " GB/s"]
