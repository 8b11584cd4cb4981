"""The report: one row per workload group, from pytest-benchmark's results (their JSON dicts).

Used by conftest.py (the terminal summary of any `pytest --benchmark-...` run and the JSON's
`fastnn` section) and by run.py (`make bench`: passes merged, memory added). Functions return lines,
so either can print them.
"""
import math

import numpy as np

import fastnn
from fastnn import _ops
from roofline import memory_roof
from workloads import WORKLOADS

CONTENDERS = ("numpy", "numba", "cython", "torch")

# The most a stride-1 convolution's "effective" rate (direct-convolution flops / time) can exceed the
# machine's peak by, per backend and kernel side: the multiplies its largest Winograd tile saves.
# F(4x4, 3x3) computes a 4x4 output tile with 36 products instead of 144 (Numba; Cython where its
# rules pick it over F(2x2, 3x3), 2.25x); Cython's F(4x4, 5x5) with 64 instead of 400, F(2x2, 7x7) a
# 2x2 tile with 64 instead of 196.
WINOGRAD_SAVING = {"numba": {3: 4.0}, "cython": {3: 4.0, 5: 6.25, 7: 196 / 64}}

LEGEND = [
    "min time in ms (* best compiled backend, ! result differs from the reference; skip/fail: see below);",
    "x = speedup of the best compiled backend. rate and % of peak: the best compiled backend's. Memory-bound",
    "rows: GB/s of minimum traffic (inputs read once, outputs written once) against the memory roof measured",
    "at the workload's working set (the fastest of a copy and two in-place updates (2 and 7 streams) of that many bytes: cache or",
    "DRAM as the benchmark runs it). Others: GFLOP/s against the measured compute peak (the fastest sgemm or FMA loop). e = effective:",
    "stride-1 convolutions are counted at direct-convolution flops, of which Winograd executes up to 4x (3x3),",
    "6.25x (5x5, cython) or 3.06x (7x7, cython) fewer, so an 'e' % may pass 100% by that much. # = above the roof (100%, or",
    "Winograd's saving for 'e'): a bug in the report, listed at the end. MiB: peak extra resident memory of",
    "one call per backend (numba/cython/torch), from the memory pass; mem x torch: the best compiled",
    "backend's over torch's (below 1: fastnn needs less).",
]


def group_results(benchmarks):
    """{group: {"workload", "results": {backend: benchmark dict}}} in WORKLOADS' order."""
    by_group = {w.group: {"workload": w, "results": {}} for w in WORKLOADS}
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        if info.get("group") in by_group:
            by_group[info["group"]]["results"][info["backend"]] = bench
    return by_group


def rate_of(workload, seconds, backend, roof=None):
    """(rate, unit, fraction of peak or None, roof size in bytes or None, ceiling) of `backend`
    running `workload` in `seconds`: GB/s against the memory roof at its working set, or GFLOP/s
    against the compute peak. The ceiling is the highest fraction that is not a bug: 1, or for an
    effective rate the multiplies Winograd saves on that backend."""
    peak = size = None
    if workload.kind == "gemm":
        rate = workload.flops / seconds / 1e9
        unit = "eff. GFLOP/s" if workload.effective else "GFLOP/s"
        if roof:
            peak = rate / roof["compute_gflops"]
    else:
        rate, unit = workload.bytes / seconds / 1e9, "GB/s"
        if roof:
            bandwidth, size = memory_roof(roof, workload.touched)
            peak = rate / bandwidth
    ceiling = WINOGRAD_SAVING.get(backend, {}).get(workload.effective, 1.0)
    return rate, unit, peak, size, ceiling


def row_cells(workload, results, roof=None, memory=None):
    """The derived values of one group: best compiled backend, speedups, rate, fraction of peak,
    the highest fraction that is not a bug (`ceiling`), `over` (above it), memory per contender."""
    times = {b: r["stats"]["min"] for b, r in results.items()}
    correct = {b: r.get("extra_info", {}).get("correct") for b, r in results.items()}
    compiled = {b: t for b, t in times.items() if b in _ops.COMPILED and correct.get(b) is not False}
    best = min(compiled, key=compiled.get) if compiled else None
    rate_backend = best or ("numpy" if "numpy" in times else None)
    memory = dict(memory or {})
    cells = {"times": times, "correct": correct, "best": best, "rate_backend": rate_backend,
             "effective": bool(workload.effective), "memory": memory}
    if best and "numpy" in times:
        cells["vs_numpy"] = times["numpy"] / times[best]
    if best and "torch" in times:
        cells["vs_torch"] = times["torch"] / times[best]
    mem_best = memory.get(best) if best else None
    if mem_best is not None and memory.get("torch"):
        cells["mem_vs_torch"] = mem_best / memory["torch"]
    if rate_backend:
        rate, unit, peak, size, ceiling = rate_of(workload, times[rate_backend], rate_backend, roof)
        cells.update(rate=rate, unit=unit, ceiling=ceiling)
        if peak is not None:
            cells["peak"] = peak
        if size is not None:
            cells["roof_size"] = size
        cells["over"] = bool(peak is not None and peak > ceiling)
    return cells


def contender_info(workload, results, roof=None):
    """Per contender, fastnn's columns for its own time (pytest-benchmark's extra_info): speedup over
    the NumPy reference and over torch, rate, fraction of peak and its ceiling."""
    times = {b: r["stats"]["min"] for b, r in results.items()}
    info = {}
    for backend, seconds in times.items():
        rate, unit, peak, size, ceiling = rate_of(workload, seconds, backend, roof)
        entry = {"rate": rate, "unit": unit, "effective": bool(workload.effective)}
        if "numpy" in times:
            entry["x_numpy"] = times["numpy"] / seconds
        if "torch" in times:
            entry["x_torch"] = times["torch"] / seconds
        if peak is not None:
            entry.update(peak=peak, peak_ceiling=ceiling)
        if size is not None:
            entry["roof_working_set"] = size
        info[backend] = entry
    return info


def rows(by_group, roof=None, memory=None):
    """{group: cells} for the groups with results (a group whose cells fail maps to the error)."""
    out = {}
    for name, group in by_group.items():
        if group["results"] or (memory or {}).get(name):
            try:
                out[name] = row_cells(group["workload"], group["results"], roof, (memory or {}).get(name))
            except Exception as error:  # one broken row must not lose the report
                out[name] = {"error": repr(error)}
    return out


def over_roof(cells_by_group):
    """The rows whose % of peak is above their ceiling (a non-effective one above 100%)."""
    return {name: c for name, c in cells_by_group.items() if c.get("over")}


def json_rows(cells_by_group):
    """The derived columns for the JSON (times and flags are in the benchmarks already)."""
    keep = ("best", "vs_numpy", "vs_torch", "rate", "unit", "rate_backend", "peak", "roof_size", "ceiling",
            "effective", "over", "memory", "mem_vs_torch", "error")
    return {name: {k: v for k, v in cells.items() if k in keep} for name, cells in cells_by_group.items()}


def _mib(nbytes):
    if nbytes is None:
        return "-"
    mib = nbytes / 2 ** 20
    return f"{mib:.1f}" if mib < 10 else f"{mib:.0f}"


def _status(skips):
    """(group, backend) -> "skip" or "fail", from the not-measured list."""
    status = {}
    ids = {f"{w.id}-{b}": (w.group, b) for w in WORKLOADS for b in w.contenders}
    for entry in skips:
        key = ids.get(entry["test"].removeprefix("test_bench[").removesuffix("]"))
        if key:
            status[key] = "fail" if entry.get("outcome") == "failed" else "skip"
    return status


def table_lines(by_group, skips, roof=None, memory=None):
    status = _status(skips)
    cells_by_group = rows(by_group, roof, memory)
    with_memory = any(c.get("memory") for c in cells_by_group.values())
    columns = ["group", *CONTENDERS, "x numpy", "x torch", "rate (best compiled)"]
    columns += ["% peak"] if roof else []
    columns += ["MiB numba/cython/torch", "mem x torch"] if with_memory else []
    table = []
    for name in by_group:
        if name not in cells_by_group and not any(k[0] == name for k in status):
            continue  # deselected
        cells = cells_by_group.get(name, {"times": {}, "correct": {}, "best": None})
        if "error" in cells:
            table.append([name, f"report error: {cells['error']}"] + [""] * (len(columns) - 2))
            continue
        row = [name]
        for backend in CONTENDERS:
            if backend in cells["times"]:
                mark = "*" if backend == cells["best"] else ("!" if cells["correct"].get(backend) is False else "")
                row.append(f"{cells['times'][backend] * 1e3:.3f}{mark}")
            else:
                row.append(status.get((name, backend), "-"))
        row.append(f"{cells['vs_numpy']:.2f}x" if "vs_numpy" in cells else "")
        row.append(f"{cells['vs_torch']:.2f}x" if "vs_torch" in cells else "")
        rate = ""
        if "rate" in cells:
            rate = f"{cells['rate']:.1f} {cells['unit']}" if cells["unit"] == "GB/s" else f"{cells['rate']:.0f} {cells['unit']}"
            if cells["rate_backend"] != cells["best"]:
                rate += f" ({cells['rate_backend']})"
        row.append(rate)
        if roof:
            peak = ""
            if cells.get("peak") is not None:
                peak = f"{100 * cells['peak']:.0f}%" + ("e" if cells["effective"] else " ") + (" #" if cells["over"] else "  ")
            row.append(peak)
        if with_memory:
            mem = cells.get("memory", {})
            row.append("/".join(_mib(mem.get(b)) for b in ("numba", "cython", "torch")) if mem else "")
            row.append(f"{cells['mem_vs_torch']:.2f}x" if "mem_vs_torch" in cells else "")
        table.append(row)
    if not table:
        return []
    widths = [max(len(str(r[i])) for r in table + [columns]) for i in range(len(columns))]

    def fmt(row):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return ["", *LEGEND, fmt(columns)] + [fmt(r) for r in table] + over_roof_lines(cells_by_group, roof)


def over_roof_lines(cells_by_group, roof):
    over = over_roof(cells_by_group)
    if not over:
        return []
    lines = ["", f"ABOVE THE ROOF ({len(over)} rows): a bug in the report (its traffic or flop count, working set "
                 "or roof does not describe what runs):"]
    for name, c in over.items():
        if c["unit"] == "GB/s":
            wall = f"memory roof at {c['roof_size'] >> 20} MiB, {memory_roof(roof, c['roof_size'])[0]:.1f} GB/s"
        else:
            wall = f"compute peak {roof['compute_gflops']:.0f} GFLOP/s"
        lines.append(f"  {name}: {100 * c['peak']:.0f}% of {wall} ({c['rate_backend']}: {c['rate']:.1f} {c['unit']}; "
                     f"allowed {100 * c['ceiling']:.0f}%)")
    return lines


def notes_lines(by_group, skips):
    lines = []
    linear = {n: g for n, g in by_group.items() if n.startswith(("linear ", "gemm(linear) "))}
    for name, group in linear.items():
        if not name.startswith("linear ") or not group["results"]:
            continue
        gemm = linear.get(name.replace("linear ", "gemm(linear) ", 1))
        cells = row_cells(group["workload"], group["results"])
        if gemm and cells["best"] and gemm["results"]:
            for backend, result in gemm["results"].items():
                lines.append(f"{name}: best compiled ({cells['best']}) takes "
                             f"{cells['times'][cells['best']] / result['stats']['min']:.2f}x the time of its three GEMMs in {backend}")
    for name, group in by_group.items():
        for backend, result in group["results"].items():
            if result["extra_info"].get("correct") is False:
                lines.append(f"WRONG RESULT: {name} [{backend}] max error {result['extra_info'].get('max_error'):.3g} "
                             "(relative to max |reference|)")
    reasons = {}
    for entry in skips:
        reasons.setdefault((entry.get("outcome", "skipped"), entry["reason"]), []).append(entry["test"])
    if reasons:
        lines += ["", "not measured:"]
        lines += [f"  {outcome} x{len(tests)}: {reason}" for (outcome, reason), tests in sorted(reasons.items())]
    return lines


# issue "fast on every shape": per family, geometric mean and slowest of fwd+bwd speedups vs torch
TARGETS = {"conv": (1.5, 1.0), "pool": (5.0, 3.0), "batchnorm": (2.0, 1.2), "activations": (2.5, 1.0),
           "optim": (1.0, 1.0), "linear": (1.0, 1.0), "losses": (1.0, 1.0), "training": (1.5, 1.5)}


def _family(workload):
    if not workload.ops:
        return None  # a baseline row (plain GEMMs)
    if "train step" in workload.group:
        return "training"
    return _ops.FAMILY_OF[workload.ops[0]]


def family_summary_lines(by_group):
    """Per family: the geometric mean and the slowest of the best compiled backend's speedup over
    torch, on fwd+bwd rows (steps for optimizers and training), against the targets."""
    speedups_by_family = {}
    for name, group in by_group.items():
        workload = group["workload"]
        family = _family(workload)
        if family is None or not group["results"] or (" fwd " in f" {name} " and family not in ("optim", "losses")):
            continue
        cells = row_cells(workload, group["results"])
        if "vs_torch" in cells:
            speedups_by_family.setdefault(family, []).append((cells["vs_torch"], name))
    if not speedups_by_family:
        return []
    lines = ["", "per family, fwd+bwd (and steps) vs torch: geometric mean, slowest (target geomean / slowest)"]
    for family, speedups in speedups_by_family.items():
        geomean = math.exp(sum(math.log(r) for r, _ in speedups) / len(speedups))
        slowest, where = min(speedups)
        goal = TARGETS.get(family)
        met = goal and geomean >= goal[0] and slowest >= goal[1]
        lines.append(f"  {family:<12} {geomean:5.2f}x geomean, slowest {slowest:5.2f}x ({where}) over {len(speedups)} rows"
                     + (f"; target {goal[0]:g}x / {goal[1]:g}x: {'met' if met else 'NOT met'}" if goal else ""))
    return lines


def auto_lines(by_group, noisy):
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
        return []
    table = fastnn.backend_table()
    lines = ["", f"AUTO: the {table['source']} table ({table['reason']}); this run, ratio = cython time / numba time"
             + (" (WARNING: the machine was loaded)" if noisy else "") + ":"]
    for op in _ops.FAMILY_OF:
        if op not in evidence:
            continue
        fewest = min(n for n, _, _ in evidence[op])
        chosen = [(r, g) for n, r, g in evidence[op] if n == fewest]
        ratio = math.exp(sum(math.log(r) for r, _ in chosen) / len(chosen))
        entry = fastnn._autotable.entry(ratio, list(_ops.COMPILED))
        in_use = table["choices"].get(op, "numba")
        flag = "" if entry["backend"] == in_use else "   <- differs from the table in use"
        lines.append(f"  {op:<26} {ratio:5.2f} {entry['backend']:<7}{' (tie)' if entry['tie'] else '      '} "
                     f"table: {in_use}{flag}")
    return lines


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
