"""AUTO as data: `python -m fastnn.tune` writes this machine's table, AUTO uses it when the
fingerprint matches, and `fastnn.backend_table()` says which table is in use and why."""
import json
import os
import subprocess
import sys

import fastnn
from fastnn import _autotable


def _run(args, cache_dir):
    env = dict(os.environ, FASTNN_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _table_in_use(cache_dir):
    code = "import json, fastnn; print(json.dumps(fastnn.backend_table()))"
    return json.loads(_run(["-c", code], cache_dir))


def test_shipped_table_records_its_machine():
    table = json.loads((_autotable.resources.files("fastnn") / _autotable.FILENAME).read_text())
    assert set(table["fingerprint"]) == {"cpu", "isa", "cores", "blas"}
    for op, entry in table["entries"].items():
        assert op in fastnn._ops.FAMILY_OF and entry["backend"] in ("numba", "cython")
        if entry["tie"]:
            assert entry["backend"] == _autotable.TIE_BACKEND


def test_tune_writes_a_local_table_that_auto_uses(tmp_path):
    assert _table_in_use(tmp_path)["source"] == "shipped"
    log = _run(["-m", "fastnn.tune", "--ops", "relu,max_pool2d,adam_step", "--seconds", "0.02"], tmp_path)
    assert "activations" in log and "pool" in log and "optim" in log  # progress, per family
    written = json.loads((tmp_path / _autotable.FILENAME).read_text())
    assert set(written["entries"]) == {"relu", "max_pool2d", "adam_step"}
    in_use = _table_in_use(tmp_path)
    assert in_use["source"] == "local" and "matches" in in_use["reason"]
    assert in_use["fingerprint"] == in_use["machine"]
    assert in_use["choices"] == {op: e["backend"] for op, e in written["entries"].items()}
    written["fingerprint"]["cpu"] = "another CPU"  # a table from another machine is not used
    (tmp_path / _autotable.FILENAME).write_text(json.dumps(written))
    in_use = _table_in_use(tmp_path)
    assert in_use["source"] == "shipped" and "another machine" in in_use["reason"]


def test_ties_resolve_by_the_fixed_rule():
    assert _autotable.entry(1.03, ["numba", "cython"]) == {"backend": _autotable.TIE_BACKEND, "ratio": 1.03, "tie": True}
    assert _autotable.entry(0.97, ["numba", "cython"])["backend"] == _autotable.TIE_BACKEND
    assert _autotable.entry(1.2, ["numba", "cython"]) == {"backend": "numba", "ratio": 1.2, "tie": False}
    assert _autotable.entry(0.8, ["numba", "cython"])["backend"] == "cython"
    assert _autotable.entry(None, ["numba"]) == {"backend": "numba", "ratio": None, "tie": False}
