"""bench/compare.py: two runs side by side, per family, with torch's ratio as the drift control."""
import importlib.util
import json
from pathlib import Path

COMPARE_PY = Path(__file__).resolve().parent.parent / "bench" / "compare.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_compare", COMPARE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(path, times):
    benchmarks = [{"group": group, "extra_info": {"backend": backend, "ops": [op]}, "stats": {"min": t}}
                  for (group, op), by_backend in times.items() for backend, t in by_backend.items()]
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return str(path)


def test_compare_reports_fastnn_change_and_torch_control(tmp_path, capsys):
    compare = _module()
    before = _run(tmp_path / "a.json", {("relu fwd", "relu"): {"numba": 2.0, "cython": 1.0, "torch": 3.0},
                                        ("conv2d fwd", "conv2d"): {"cython": 4.0, "torch": 4.0}})
    after = _run(tmp_path / "b.json", {("relu fwd", "relu"): {"numba": 0.5, "cython": 1.0, "torch": 3.0},
                                       ("conv2d fwd", "conv2d"): {"cython": 8.0, "torch": 4.4}})
    rows = {r[1]: r for r in compare.rows(compare.load(before), compare.load(after))}
    assert rows["relu fwd"][:4] == ("activations", "relu fwd", 2.0, 1.0)  # best compiled: 1.0 -> 0.5
    assert rows["conv2d fwd"][0] == "conv" and rows["conv2d fwd"][2] == 0.5
    assert abs(rows["conv2d fwd"][3] - 4.0 / 4.4) < 1e-12
    assert compare.main([before, after, "--rows"]) == 0
    out = capsys.readouterr().out
    assert "activations" in out and "conv" in out and "0.500" in out
