"""Two benchmark runs side by side (e.g. before and after a change, each saved by `make bench` as
results/<timestamp>.json): per family, the geometric mean over the rows both runs have of the best
compiled backend's time before / after (above 1: faster now), beside torch's own before / after
(the control: torch's code did not change, so its ratio is the machine's drift between the runs)
and each run's speedup over torch.

    cd bench && python compare.py BEFORE.json AFTER.json [--rows]

--rows also lists every row, slowest change first.
"""
import argparse
import json
import math
import sys
from collections import defaultdict

COMPILED = ("numba", "cython")


def load(path):
    """{group: {backend: min seconds}} and {group: family} of one run's JSON."""
    times, families = defaultdict(dict), {}
    for bench in json.load(open(path))["benchmarks"]:
        info = bench["extra_info"]
        times[bench["group"]][info["backend"]] = bench["stats"]["min"]
        families[bench["group"]] = "training" if "train step" in bench["group"] else info.get("family") or _family(info)
    return times, families


def _family(info):
    from fastnn._ops import FAMILY_OF

    ops = info.get("ops") or []
    return FAMILY_OF.get(ops[0], "linear") if ops else "linear"


def _geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def rows(before, after):
    """(family, group, fastnn before/after, torch before/after, x torch before, x torch after)."""
    (b_times, families), (a_times, _) = before, after
    out = []
    for group in sorted(set(b_times) & set(a_times)):
        b, a = b_times[group], a_times[group]
        ours_b = min((b[k] for k in COMPILED if k in b), default=None)
        ours_a = min((a[k] for k in COMPILED if k in a), default=None)
        if ours_b is None or ours_a is None:
            continue
        tb, ta = b.get("torch"), a.get("torch")
        out.append((families[group], group, ours_b / ours_a, tb / ta if tb and ta else None,
                    tb / ours_b if tb else None, ta / ours_a if ta else None))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rows", action="store_true", help="list every row, slowest change first")
    args = parser.parse_args(argv)
    table = rows(load(args.before), load(args.after))
    print(f"{'family':12s} {'rows':>4s}  fastnn before/after  torch before/after (control)  x torch before -> after")
    for family in sorted({r[0] for r in table}):
        mine = [r for r in table if r[0] == family]
        print(f"{family:12s} {len(mine):4d}  {_geomean([r[2] for r in mine]):19.3f}  "
              f"{_geomean([r[3] for r in mine]):28.3f}  {_geomean([r[4] for r in mine]):9.2f}x -> "
              f"{_geomean([r[5] for r in mine]):.2f}x")
    if args.rows:
        for family, group, ours, control, _, _ in sorted(table, key=lambda r: r[2]):
            print(f"  {family:12s} {group:60s} {ours:6.3f}  torch {control if control is None else round(control, 3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
