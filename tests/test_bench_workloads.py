"""bench/workloads.py imports and its list is well formed (the benchmark suite itself is not run here)."""
import importlib.util
from pathlib import Path

import pytest

from fastnn._ops import FAMILY_OF

WORKLOADS_PY = Path(__file__).resolve().parent.parent / "bench" / "workloads.py"


@pytest.fixture(scope="module")
def workloads():
    spec = importlib.util.spec_from_file_location("bench_workloads", WORKLOADS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WORKLOADS


def test_groups_are_unique(workloads):
    groups = [w.group for w in workloads]
    assert len(groups) == len(set(groups)), sorted(g for g in groups if groups.count(g) > 1)


def test_every_workload_names_known_ops_and_a_computation(workloads):
    for w in workloads:
        assert set(w.ops) <= set(FAMILY_OF), (w.group, set(w.ops) - set(FAMILY_OF))
        assert (w.run is None) != (w.stateful is None), w.group
        assert w.kind in ("memory", "gemm"), w.group
