"""`make bench`: measure the machine's roofline, time the pytest-benchmark suite, measure each
workload's peak memory, print the report.

    cd bench && python run.py [--quick] [-k EXPR] [--threads N] [--passes N] [--no-memory] [-- pytest args]

Steps: the roofline (compute peak: sgemms and an FMA loop; memory bandwidth at working sets from 1 to 256 MiB: cache to DRAM;
measured again after the timing pass, each figure the higher of the two);
the timing pass (pytest on test_bench_ops.py with pytest-benchmark's options, --benchmark-max-time
0.4 s per test, at least 3 rounds; anything after `--` is appended, so e.g. `-- --benchmark-min-rounds=10`
or `-- --benchmark-autosave` work as in any pytest-benchmark run); the memory pass (one fresh
process per op family, MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072, each
contender's peak extra memory of one call); then one table row per group (ms per contender,
speedups of the best compiled backend over NumPy and PyTorch, rate and % of peak, memory and its
ratio to torch), the per-family summary, a PNG of the speedups and the AUTO table suggestion.
Progress: a tqdm bar per pass (the current test and its phase: warm-up, measure, memory); pytest's
own output goes to results/<timestamp>-<pass>.log. A failing or missing op shows up in the report;
it never stops it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fastnn
from fastnn import _ops

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
import report  # noqa: E402
import roofline  # noqa: E402
from conftest import workload_family  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

BY_ID = {f"{w.id}-{b}": w for w in WORKLOADS for b in w.contenders}
# the memory pass: every buffer above 128 KiB its own mapping, given back when freed, so the peak
# resident memory of one call counts what that call allocates and touches
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _json_scalar(value):
    """NumPy scalars in the report's JSON as Python numbers (json refuses numpy.bool and int64)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- machine ---------------------------------------------------------------------------------------

def header(threads, busy_before=None):
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
                     "CPU's kernels (on an AVX-512 machine about half its peak); NumPy's GEMMs, the sgemm "
                     "figures of the roofline and any fastnn kernel calling BLAS are measured under it")
    if os.environ.get("OPENBLAS_L2_SIZE"):
        lines.append(f"note: OPENBLAS_L2_SIZE={os.environ['OPENBLAS_L2_SIZE']} is set (OpenBLAS blocking)")
    if busy_before is not None and busy_before > 0.1:
        cores = os.cpu_count()
        lines.append(f"{'WARNING: ' if busy_before > cores / 2 else ''}other processes kept {busy_before:.1f} of "
                     f"{cores} cores busy in the second before the run"
                     + (": timings are noisy" if busy_before > cores / 2 else ""))
    missing = {b: len(ops) for b, ops in fastnn.missing_kernels().items()}
    lines.append(f"kernels missing: {missing} of {len(_ops.FAMILY_OF)} ops (see fastnn.missing_kernels())")
    return lines


# --- the passes ------------------------------------------------------------------------------------

def _test_id(test):
    return test.removeprefix("test_bench[").removesuffix("]")


def run_pytest(args, extra, log_path, label, env=None):
    """pytest on the suite with `extra` options, its output to `log_path`, its progress events read
    from a pipe into a tqdm bar. Returns (exit code, not-measured entries, test ids started)."""
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "pytest", "test_bench_ops.py", "-q", "-rfE", "--tb=line",
           f"--fastnn-threads={args.threads}", f"--fastnn-progress-fd={write_fd}"]
    if args.k:
        cmd += ["-k", args.k]
    cmd += extra
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        process = subprocess.Popen(cmd, cwd=HERE, env=dict(os.environ, **(env or {})), stdout=log,
                                   stderr=subprocess.STDOUT, pass_fds=(write_fd,))
    os.close(write_fd)
    not_measured, started = [], []
    bar = tqdm(total=None, desc=label, unit="test", dynamic_ncols=True, file=sys.stderr)
    current = ""
    with os.fdopen(read_fd) as events:
        for line in events:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "collected":
                bar.reset(total=event["total"])
            elif kind == "phase" and event["phase"] == "roofline":
                bar.set_postfix_str("roofline")
            elif kind == "start":
                current = _test_id(event["test"])
                started.append(current)
                bar.set_postfix_str(current)
            elif kind == "phase":
                detail = f" {event['rounds']} rounds" if event.get("rounds") else ""
                bar.set_postfix_str(f"{current}: {event['phase']}{detail}")
            elif kind == "end":
                bar.update(1)
            elif kind == "outcome":
                not_measured.append({k: v for k, v in event.items() if k != "event"})
    bar.close()
    code = process.wait()
    problems = [l.rstrip() for l in Path(log_path).read_text().splitlines()
                if l.startswith(("FAILED", "ERROR", "INTERNALERROR"))]
    print(f"{label}: pytest exit code {code}; log {log_path}" + "".join(f"\n  {p}" for p in problems[:20]),
          flush=True)
    return code, not_measured, started


def timing_pass(args, roof_path, json_path, log_path, label):
    budget = ["--benchmark-max-time=0.03", "--benchmark-min-rounds=1"] if args.quick else \
        ["--benchmark-max-time=0.4", "--benchmark-min-rounds=3"]
    extra = ["--benchmark-disable-gc", "--benchmark-group-by=group", f"--benchmark-json={json_path}",
             f"--fastnn-roofline={roof_path}", *budget, *args.pytest_args]
    code, skips, started = run_pytest(args, extra, log_path, label)
    benchmarks = []
    try:
        benchmarks = json.loads(Path(json_path).read_text())["benchmarks"]
    except (OSError, ValueError, KeyError) as error:
        print(f"no benchmark results ({error})")
    return benchmarks, skips, started


def memory_pass(args, families, tmp, stamp):
    """{group: {backend: bytes}} and the not-measured entries, one fresh process per family."""
    memory, skips = {}, []
    for family in families:
        path = Path(tmp) / f"memory-{family}.json"
        log = RESULTS / f"{stamp}-memory-{family}.log"
        run_pytest(args, [f"--fastnn-memory={path}", f"--fastnn-family={family}"], log, f"memory {family}",
                   env=MALLOC_ENV)
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        memory.update(found["memory"])
        skips += found["not_measured"]
    return memory, skips


def merge_passes(kept, new):
    """Per (group, contender), the pass with the lowest minimum time (passes interleave the contenders)."""
    best = {(b["extra_info"].get("group"), b["extra_info"].get("backend")): b for b in kept}
    for bench in new:
        key = (bench["extra_info"].get("group"), bench["extra_info"].get("backend"))
        if key not in best or bench["stats"]["min"] < best[key]["stats"]["min"]:
            best[key] = bench
    return list(best.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds (checks the harness, not for numbers)")
    parser.add_argument("-k", help="pytest -k expression selecting tests (e.g. 'relu or tanh')")
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads(),
                        help="thread count of every contender (default: fastnn's, the usable cores)")
    parser.add_argument("--passes", type=int, default=1,
                        help="run the timing pass N times and keep each contender's best (noisy machines)")
    parser.add_argument("--no-roofline", action="store_true", help="skip the roofline measurement (no %% of peak)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory pass (no memory column)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments for the timing pass (after --)")
    args = parser.parse_args()
    fastnn.set_num_threads(args.threads)
    # other processes' CPU use, sampled before our own threads run (the roofline and the suite keep
    # every core busy: a sample taken after them reports this run itself as noise)
    busy_before = roofline.busy_before_run(os.cpu_count())  # /proc/stat sums all CPUs
    times_before = roofline.cpu_times()

    print("\n".join(header(args.threads, busy_before)), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    benchmarks, skips, started, memory = [], [], [], {}
    data = {"benchmarks": []}
    with tempfile.TemporaryDirectory() as tmp:
        roof, roof_path = None, "off"
        if not args.no_roofline:
            roof = roofline.measure(args.threads, args.quick)
            roof_path = Path(tmp) / "roofline.json"
            roof_path.write_text(json.dumps(roof))
            print("\n".join(roofline.describe(roof)), flush=True)
        for index in range(args.passes):
            json_path = Path(tmp) / f"bench{index}.json"
            started_at = time.perf_counter()
            found, skips, started = timing_pass(args, roof_path, json_path, RESULTS / f"{stamp}-timing{index + 1}.log",
                                                f"timing {index + 1}/{args.passes}")
            print(f"timing pass {index + 1}/{args.passes}: {time.perf_counter() - started_at:.0f} s", flush=True)
            benchmarks = merge_passes(benchmarks, found)
            if json_path.exists():
                data = json.loads(json_path.read_text())
        if roof is not None:
            # each contender kept its best of args.passes passes; the roof gets a second chance too: a
            # roof measured while another process competed is too low (session 23's noisy host: a
            # 108%-of-roof row), so each figure is the higher of a measurement before and after
            roof = roofline.best_of(roof, roofline.measure(args.threads, args.quick))
            print("roofline measured again after the timing passes: the report takes the higher of each figure",
                  flush=True)
        if not args.no_memory:
            # the families of the tests the timing pass ran (its -k selection), in the list's order
            seen = {workload_family(BY_ID[t]) for t in started if t in BY_ID}
            families = list(dict.fromkeys(workload_family(w) for w in WORKLOADS if workload_family(w) in seen))
            started_at = time.perf_counter()
            memory, memory_skips = memory_pass(args, families, tmp, stamp)
            skips += [dict(e, reason=f"memory pass: {e['reason']}") for e in memory_skips if e.get("outcome") == "failed"]
            print(f"memory pass ({len(families)} processes): {time.perf_counter() - started_at:.0f} s", flush=True)

    times_after = roofline.cpu_times()
    steal = roofline.steal_share(times_before, times_after) if times_before and times_after else None
    by_group = report.group_results(benchmarks)
    cells = report.rows(by_group, roof, memory)
    data["benchmarks"] = benchmarks
    for group in by_group.values():  # fastnn's per-contender columns, for the merged passes
        if group["results"]:
            info = report.contender_info(group["workload"], group["results"], roof)
            for backend, bench in group["results"].items():
                bench["extra_info"]["fastnn"] = dict(info[backend], memory=memory.get(bench["extra_info"]["group"], {}).get(backend))
    data["fastnn"] = {"roofline": roof, "rows": report.json_rows(cells), "memory": memory, "not_measured": skips,
                      "quick": args.quick, "threads": args.threads, "passes": args.passes,
                      "busy_cores_before": busy_before, "steal_share": steal,
                      "environment": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}}
    saved = RESULTS / f"{stamp}.json"
    saved.write_text(json.dumps(data, indent=1, default=_json_scalar))
    shutil.copyfile(saved, RESULTS / "latest.json")

    lines = (roofline.describe(roof) if roof else []) + report.table_lines(by_group, skips, roof, memory)
    lines += report.family_summary_lines(by_group) + report.notes_lines(by_group, skips)
    if steal is not None and steal > 0.01:
        lines.append(f"note: the virtual machine's host took {100 * steal:.0f}% of the CPU time during the run "
                     "(steal): timings are noisy")
    noisy = (busy_before is not None and busy_before > os.cpu_count() / 2) or (steal is not None and steal > 0.05)
    lines += report.auto_lines(by_group, noisy)
    print("\n" + "\n".join(lines))
    try:
        title = (f"fastnn {stamp}, float32, {args.threads} threads" + (" (quick)" if args.quick else "")
                 + (", other processes competed: noisy" if noisy else ""))
        png = report.plot(by_group, RESULTS / f"{stamp}.png", title)
        if png:
            shutil.copyfile(png, RESULTS / "latest.png")
            print(f"\nplot: {png}")
    except Exception as error:  # a plotting problem must not lose the report
        print(f"plot failed: {error!r}")
    print(f"results: {saved} (and {RESULTS / 'latest.json'})")


if __name__ == "__main__":
    main()
