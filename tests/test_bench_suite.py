"""bench/ is a pytest-benchmark suite as users know it: its options rule the rounds, its JSON carries
fastnn's columns, and the memory pass measures what one call allocates. Each test runs one small
workload in a pytest subprocess (a few seconds)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serial  # timing-sensitive: run alone (pyproject.toml's markers)

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = "relu-fwd-32x64x32x32"  # relu forward on 8 MiB: one 8 MiB output

pytest.importorskip("pytest_benchmark")


def _pytest_bench(*args, env=None):
    # from bench/, as `make bench` runs: at the repository root the source tree (no compiled kernels)
    # would shadow the installed fastnn
    cmd = [sys.executable, "-m", "pytest", ".", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not an xdist worker's
    done = subprocess.run(cmd, cwd=ROOT / "bench", env=dict(inherited, **(env or {})), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_min_rounds_are_the_rounds_run(tmp_path):
    out = tmp_path / "bench.json"
    stdout = _pytest_bench("-k", f"{WORKLOAD}-numba or {WORKLOAD}-numpy", "--benchmark-min-rounds=7",
                           "--benchmark-max-time=0", f"--benchmark-json={out}", "--fastnn-roofline=off")
    data = json.loads(out.read_text())
    assert {b["extra_info"]["backend"] for b in data["benchmarks"]} == {"numpy", "numba"}
    for bench in data["benchmarks"]:
        assert bench["stats"]["rounds"] == 7 and len(bench["stats"]["data"]) == 7
        assert bench["extra_info"]["correct"] is True
        assert bench["extra_info"]["fastnn"]["x_numpy"] > 0  # fastnn's columns, per contender
    assert "relu fwd 32x64x32x32" in data["fastnn"]["rows"]
    assert "fastnn ====" in stdout and "x numpy" in stdout  # the report after pytest-benchmark's tables


def test_max_time_sets_the_rounds_beyond_the_minimum(tmp_path):
    out = tmp_path / "bench.json"
    _pytest_bench("-k", f"{WORKLOAD}-numba", "--benchmark-min-rounds=2", "--benchmark-max-time=0.2",
                  f"--benchmark-json={out}", "--fastnn-roofline=off")
    stats = json.loads(out.read_text())["benchmarks"][0]["stats"]
    assert stats["rounds"] > 2 and stats["rounds"] * stats["min"] <= 0.2 * 1.5 + stats["min"]


def test_memory_pass_counts_one_call_allocation(tmp_path):
    out = tmp_path / "memory.json"
    _pytest_bench("-k", WORKLOAD, f"--fastnn-memory={out}",
                  env={"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"})
    memory = json.loads(out.read_text())["memory"]["relu fwd 32x64x32x32"]
    assert "numpy" not in memory  # fastnn's backends and torch only
    for backend, nbytes in memory.items():
        assert 8 << 20 <= nbytes < 10 << 20, (backend, nbytes)  # the 8 MiB output, a little else
