"""`make bench`: measure the machine's roofline, run the pytest-benchmark suite, print the report.

    cd bench && python run.py [--quick] [-k EXPR] [--threads N] [--passes N] [-- extra pytest args]

Steps: roofline (fp32 sgemm with NumPy at the thread count; copy bandwidth at several working-set
sizes, in cache to DRAM), the suite (bench/test_bench_ops.py, progress shown), results saved as
bench/results/<timestamp>.json and latest.json, then one table row per group (ms per contender,
speedup of the best compiled backend over NumPy and over PyTorch, throughput and % of roofline),
a PNG of the speedups, and the AUTO table suggestion for fastnn/_ops.py. A failing or missing
op shows up in the report; it never stops it.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import fastnn
from fastnn import _ops

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from workloads import WORKLOADS  # noqa: E402

CONTENDERS = ("numpy", "numba", "cython", "torch")
COPY_SIZES_MIB = (1, 4, 16, 64, 256)  # working set (source + destination): L2, L3, DRAM


# --- machine ---------------------------------------------------------------------------------------

def header(threads):
    from threadpoolctl import threadpool_info

    try:  # fastnn's Cython kernels call scipy's BLAS (cython_blas): list that library too
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass

    lines = [f"fastnn {fastnn.__version__}: backends {', '.join(fastnn.available_backends())}, "
             f"{threads} thread(s); numpy {np.__version__}, python {sys.version.split()[0]}"]
    try:
        import numba

        lines.append(f"numba {numba.__version__}")
    except ImportError:
        pass
    try:
        import torch

        lines.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads at import; set to {threads})")
    except ImportError:
        lines.append("torch not importable: its contenders are skipped")
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            lines.append(f"BLAS: {lib['internal_api']} {lib.get('version')} kernel architecture "
                         f"{lib.get('architecture', '?')}, {lib['num_threads']} threads ({Path(lib['filepath']).parent.name})")
    if os.environ.get("OPENBLAS_CORETYPE"):
        lines.append(f"WARNING: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set: OpenBLAS uses that "
                     "CPU's kernels (on this machine about half its sgemm peak); NumPy's GEMMs, the sgemm "
                     "roofline and any fastnn kernel calling BLAS are measured under it")
    if os.environ.get("OPENBLAS_L2_SIZE"):
        lines.append(f"note: OPENBLAS_L2_SIZE={os.environ['OPENBLAS_L2_SIZE']} is set (OpenBLAS blocking)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if load > 0.5:
            lines.append(f"{'WARNING: ' if load > cores / 2 else ''}load average {load:.1f} on {cores} cores"
                         + (": other processes compete, timings are noisy" if load > cores / 2 else ""))
    missing = {b: len(ops) for b, ops in fastnn.missing_kernels().items()}
    lines.append(f"kernels missing: {missing} of {len(_ops.FAMILY_OF)} ops (see fastnn.missing_kernels())")
    return lines


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
    repeats = max(1, (256 << 20) // working_set)  # ~256 MiB of traffic per sample

    def work(part):
        for _ in range(repeats):
            np.copyto(*part)

    def run():
        if threads == 1:
            return work(parts[0])
        workers = [threading.Thread(target=work, args=(part,)) for part in parts]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return 2 * n * 4 * repeats / _best_time(run, samples) / 1e9


def roofline(threads, quick):
    samples = 3 if quick else 7
    return {"threads": threads, "sgemm_gflops": sgemm_gflops(threads, samples),
            "torch_sgemm_gflops": torch_sgemm_gflops(threads, samples),
            "copy_gbytes": {str(mib << 20): copy_gbytes(mib << 20, threads, samples) for mib in COPY_SIZES_MIB}}


def copy_roof(roof, working_set):
    """Copy bandwidth measured at the smallest working set >= `working_set` (else the largest)."""
    sizes = sorted(int(s) for s in roof["copy_gbytes"])
    size = next((s for s in sizes if s >= working_set), sizes[-1])
    return roof["copy_gbytes"][str(size)], size


# --- the suite -------------------------------------------------------------------------------------

def run_suite(args, json_path, skips_path):
    cmd = [sys.executable, "-m", "pytest", "-v", "--tb=line", "-rfE", "test_bench_ops.py",
           "--benchmark-disable-gc", "--benchmark-group-by=group", f"--benchmark-json={json_path}"]
    if args.k:
        cmd += ["-k", args.k]
    cmd += args.pytest_args
    budget, min_rounds = (0.03, 1) if args.quick else (0.4, 3)  # seconds of timed calls per test
    env = dict(os.environ, FASTNN_BENCH_THREADS=str(args.threads), FASTNN_BENCH_SKIPS=str(skips_path),
               FASTNN_BENCH_BUDGET=str(budget), FASTNN_BENCH_MIN_ROUNDS=str(min_rounds))
    print("$", " ".join(cmd), flush=True)
    process = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    in_benchmark_tables = False  # pytest-benchmark's own per-group tables: the report below replaces them
    for line in process.stdout:
        if re.match(r"^-+ benchmark", line):
            in_benchmark_tables = True
        elif in_benchmark_tables and line.startswith("="):
            in_benchmark_tables = False
        if not in_benchmark_tables:
            print(line, end="", flush=True)
    return process.wait()


def load_results(json_path, skips_path):
    benchmarks, skips = [], []
    try:
        benchmarks = json.loads(Path(json_path).read_text())["benchmarks"]
    except (OSError, ValueError, KeyError) as error:
        print(f"no benchmark results ({error})")
    try:
        skips = json.loads(Path(skips_path).read_text())
    except (OSError, ValueError):
        pass
    return benchmarks, skips


def merge_passes(kept, new):
    """Per (group, contender), the pass with the lowest minimum time (passes interleave the contenders)."""
    best = {(b["extra_info"].get("group"), b["extra_info"].get("backend")): b for b in kept}
    for bench in new:
        key = (bench["extra_info"].get("group"), bench["extra_info"].get("backend"))
        if key not in best or bench["stats"]["min"] < best[key]["stats"]["min"]:
            best[key] = bench
    return list(best.values())


# --- the report ------------------------------------------------------------------------------------

def _row_cells(group, roof):
    """Times (ms) per contender, correctness flags, and the derived columns for one group."""
    workload = group["workload"]
    times = {b: r["stats"]["min"] for b, r in group["results"].items()}
    correct = {b: r["extra_info"].get("correct") for b, r in group["results"].items()}
    compiled = {b: t for b, t in times.items() if b in _ops.COMPILED and correct.get(b) is not False}
    best = min(compiled, key=compiled.get) if compiled else None
    rate_backend = best or ("numpy" if "numpy" in times else None)
    cells = {"best": best}
    if best and "numpy" in times:
        cells["vs_numpy"] = times["numpy"] / times[best]
    if best and "torch" in times:
        cells["vs_torch"] = times["torch"] / times[best]
    if rate_backend:
        seconds = times[rate_backend]
        if workload.kind == "gemm":
            cells["rate"] = f"{workload.flops / seconds / 1e9:.0f} GFLOP/s"
            cells["roof"] = workload.flops / seconds / 1e9 / roof["sgemm_gflops"] if roof else None
        else:
            cells["rate"] = f"{workload.bytes / seconds / 1e9:.1f} GB/s"
            cells["roof"] = workload.bytes / seconds / 1e9 / copy_roof(roof, workload.bytes)[0] if roof else None
        if rate_backend != best:
            cells["rate"] += f" ({rate_backend})"
    return times, correct, cells


def group_results(benchmarks):
    by_group = {w.group: {"workload": w, "results": {}} for w in WORKLOADS}
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        if info.get("group") in by_group:
            by_group[info["group"]]["results"][info["backend"]] = bench
    return by_group


def print_table(by_group, skips, roof):
    status = {}  # (group, backend) -> short reason for a missing time
    ids = {f"{w.id}-{b}": (w.group, b) for w in WORKLOADS for b in w.contenders}
    for entry in skips:
        key = ids.get(entry["test"].removeprefix("test_bench[").removesuffix("]"))
        if key:
            status[key] = "fail" if entry.get("outcome") == "failed" else "skip"
    columns = ["group", *CONTENDERS, "x numpy", "x torch", "throughput (best compiled)", "% roof"]
    rows = []
    for name, group in by_group.items():
        if not group["results"] and not any(k[0] == name for k in status):
            continue  # deselected
        try:
            times, correct, cells = _row_cells(group, roof)
        except Exception as error:  # one broken row must not lose the report
            rows.append([name, f"report error: {error!r}"] + [""] * (len(columns) - 2))
            continue
        row = [name]
        for backend in CONTENDERS:
            if backend in times:
                mark = "*" if backend == cells["best"] else ("!" if correct.get(backend) is False else "")
                row.append(f"{times[backend] * 1e3:.3f}{mark}")
            else:
                row.append(status.get((name, backend), "-"))
        row.append(f"{cells['vs_numpy']:.2f}x" if "vs_numpy" in cells else "")
        row.append(f"{cells['vs_torch']:.2f}x" if "vs_torch" in cells else "")
        row.append(cells.get("rate", ""))
        row.append(f"{100 * cells['roof']:.0f}%" if cells.get("roof") is not None else "")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [columns]) for i in range(len(columns))]
    print("\nmin time in ms (* best compiled backend, ! result differs from the reference; "
          "skip/fail: see below); x = speedup of the best compiled backend")
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths))))
    for row in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def print_roofline(roof):
    print(f"\nroofline ({roof['threads']} threads): sgemm {roof['sgemm_gflops']:.0f} GFLOP/s (numpy)"
          + (f", {roof['torch_sgemm_gflops']:.0f} GFLOP/s (torch.mm)" if roof.get("torch_sgemm_gflops") else ""))
    print("copy bandwidth (read+write) by working set: "
          + ", ".join(f"{int(s) >> 20} MiB {gb:.0f} GB/s" for s, gb in roof["copy_gbytes"].items()))


def print_notes(by_group, skips):
    linear = {n: g for n, g in by_group.items() if n.startswith(("linear ", "gemm(linear) "))}
    for name, group in linear.items():
        if not name.startswith("linear "):
            continue
        gemm = linear.get(name.replace("linear ", "gemm(linear) ", 1))
        times, _, cells = _row_cells(group, None)
        if gemm and cells["best"] and gemm["results"]:
            for backend, result in gemm["results"].items():
                print(f"{name}: best compiled ({cells['best']}) takes {times[cells['best']] / result['stats']['min']:.2f}x "
                      f"the time of its three GEMMs in {backend}")
    wrong = [(n, b, r["extra_info"].get("max_error")) for n, g in by_group.items() for b, r in g["results"].items()
             if r["extra_info"].get("correct") is False]
    for name, backend, error in wrong:
        print(f"WRONG RESULT: {name} [{backend}] max error {error:.3g} (relative to max |reference|)")
    reasons = {}
    for entry in skips:
        reasons.setdefault((entry.get("outcome", "skipped"), entry["reason"]), []).append(entry["test"])
    if reasons:
        print("\nnot measured:")
        for (outcome, reason), tests in sorted(reasons.items()):
            print(f"  {outcome} x{len(tests)}: {reason}")


def _load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


# issue "fast on every shape": per family, geometric mean and slowest of fwd+bwd speedups vs torch
TARGETS = {"conv": (1.5, 1.0), "pool": (5.0, 3.0), "batchnorm": (2.0, 1.2), "activations": (2.5, 1.0),
           "optim": (1.0, 1.0), "linear": (1.0, 1.0), "losses": (1.0, 1.0), "training": (1.5, 1.5)}


def _family(workload):
    if not workload.ops:
        return None  # a baseline row (plain GEMMs)
    if "train step" in workload.group:
        return "training"
    return _ops.FAMILY_OF[workload.ops[0]]


def print_family_summary(by_group):
    """Per family: the geometric mean and the slowest of the best compiled backend's speedup over
    torch, on fwd+bwd rows (steps for optimizers and training), against the targets."""
    rows = {}
    for name, group in by_group.items():
        workload = group["workload"]
        family = _family(workload)
        if family is None or not group["results"] or (" fwd " in f" {name} " and family not in ("optim", "losses")):
            continue
        _, _, cells = _row_cells(group, None)
        if "vs_torch" in cells:
            rows.setdefault(family, []).append((cells["vs_torch"], name))
    if not rows:
        return
    print("\nper family, fwd+bwd (and steps) vs torch: geometric mean, slowest (target geomean / slowest)")
    for family, speedups in rows.items():
        geomean = math.exp(sum(math.log(r) for r, _ in speedups) / len(speedups))
        slowest, where = min(speedups)
        goal = TARGETS.get(family)
        met = goal and geomean >= goal[0] and slowest >= goal[1]
        print(f"  {family:<12} {geomean:5.2f}x geomean, slowest {slowest:5.2f}x ({where}) over {len(speedups)} rows"
              + (f"; target {goal[0]:g}x / {goal[1]:g}x: {'met' if met else 'NOT met'}" if goal else ""))


def suggest_auto(by_group, noisy):
    """Per op, the compiled backend this run found faster (from the group isolating it best: fewest
    ops), next to the AUTO table in use; `python -m fastnn.tune` measures and stores a table."""
    evidence = {}  # op -> list of (number of ops in the group, cython/numba time ratio, group)
    for name, group in by_group.items():
        workload, results = group["workload"], group["results"]
        if not workload.auto or not all(b in results and results[b]["extra_info"].get("correct") for b in _ops.COMPILED):
            continue
        ratio = results["cython"]["stats"]["min"] / results["numba"]["stats"]["min"]
        for op in workload.ops:
            evidence.setdefault(op, []).append((len(workload.ops), ratio, name))
    if not evidence:
        return
    table = fastnn.backend_table()
    print(f"\nAUTO: the {table['source']} table ({table['reason']}); this run, ratio = cython time / numba time"
          + (" (WARNING: the machine was loaded)" if noisy else "") + ":")
    for op in _ops.FAMILY_OF:
        if op not in evidence:
            continue
        fewest = min(n for n, _, _ in evidence[op])
        chosen = [(r, g) for n, r, g in evidence[op] if n == fewest]
        ratio = math.exp(sum(math.log(r) for r, _ in chosen) / len(chosen))
        entry = fastnn._autotable.entry(ratio, list(_ops.COMPILED))
        in_use = table["choices"].get(op, "numba")
        flag = "" if entry["backend"] == in_use else "   <- differs from the table in use"
        print(f"  {op:<26} {ratio:5.2f} {entry['backend']:<7}{' (tie)' if entry['tie'] else '      '} table: {in_use}{flag}")


def plot(by_group, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, speedups = [], {b: [] for b in CONTENDERS[1:]}
    for name, group in by_group.items():
        times = {b: r["stats"]["min"] for b, r in group["results"].items()}
        if "numpy" not in times or len(times) < 2:
            continue
        names.append(name)
        for backend in speedups:
            speedups[backend].append(times["numpy"] / times[backend] if backend in times else np.nan)
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.32 * len(names)))
    positions = np.arange(len(names))
    height = 0.8 / len(speedups)
    for i, (backend, values) in enumerate(speedups.items()):
        ax.barh(positions + (i - 1) * height, values, height, label=backend)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(positions, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over the NumPy reference (min time, log scale)")
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds (checks the harness, not for numbers)")
    parser.add_argument("-k", help="pytest -k expression selecting tests (e.g. 'relu or tanh')")
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads(),
                        help="thread count of every contender (default: fastnn's, the usable cores)")
    parser.add_argument("--passes", type=int, default=1,
                        help="run the suite N times and keep each contender's best pass (noisy machines)")
    parser.add_argument("--no-roofline", action="store_true", help="skip the roofline measurement")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    fastnn.set_num_threads(args.threads)
    # other processes' load, sampled before our own threads raise the average (the roofline and the
    # suite keep every core busy: a sample taken after them reports this run itself as noise)
    load_before = _load_average()

    print("\n".join(header(args.threads)), flush=True)
    roof = None
    if not args.no_roofline:
        roof = roofline(args.threads, args.quick)
        print_roofline(roof)

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data, benchmarks, skips = {"benchmarks": []}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run_index in range(args.passes):
            json_path, skips_path = Path(tmp) / f"bench{run_index}.json", Path(tmp) / f"skips{run_index}.json"
            started = time.perf_counter()
            returncode = run_suite(args, json_path, skips_path)
            print(f"suite pass {run_index + 1}/{args.passes}: {time.perf_counter() - started:.0f} s, "
                  f"pytest exit code {returncode}", flush=True)
            pass_benchmarks, skips = load_results(json_path, skips_path)
            benchmarks = merge_passes(benchmarks, pass_benchmarks)
            if json_path.exists():
                data = json.loads(json_path.read_text())
    data["benchmarks"] = benchmarks
    data["fastnn"] = {"roofline": roof, "not_measured": skips, "quick": args.quick, "threads": args.threads,
                      "passes": args.passes, "load_average": [load_before, _load_average()],
                      "environment": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}}
    saved = RESULTS / f"{stamp}.json"
    saved.write_text(json.dumps(data, indent=1))
    shutil.copyfile(saved, RESULTS / "latest.json")

    by_group = group_results(benchmarks)
    if roof:
        print_roofline(roof)
    print_table(by_group, skips, roof)
    print_family_summary(by_group)
    print_notes(by_group, skips)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    noisy = load_before is not None and load_before > cores / 2
    suggest_auto(by_group, noisy)
    try:
        title = (f"fastnn {stamp}, float32, {args.threads} threads" + (" (quick)" if args.quick else "")
                 + (f", load average {load_before:.1f} before the run: noisy" if noisy else ""))
        png = plot(by_group, RESULTS / f"{stamp}.png", title)
        if png:
            shutil.copyfile(png, RESULTS / "latest.png")
            print(f"\nplot: {png}")
    except Exception as error:  # a plotting problem must not lose the report
        print(f"plot failed: {error!r}")
    print(f"results: {saved} (and {RESULTS / 'latest.json'})")


if __name__ == "__main__":
    main()
