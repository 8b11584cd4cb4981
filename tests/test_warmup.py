"""`python -m fastnn.warmup` reaches every Numba path the ops take (make test runs it first): after
its calls, the test suite's own samples of every op compile nothing new, and in a fresh process the
first call of each op, loaded from the cache, is quick."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

pytestmark = [pytest.mark.skipif("numba" not in fastnn.available_backends(), reason="numba is not installed"),
              pytest.mark.serial]  # times first calls: run alone

HERE = Path(__file__).resolve().parent

SCRIPT = r'''
import importlib, json, sys, time
import numpy as np
import fastnn
from fastnn import _ops, warmup
import opinfo
for family in ("activations", "conv", "pool", "batchnorm", "linear", "losses", "optim"):
    importlib.import_module("ops_" + family)
from numba.core.dispatcher import Dispatcher

ops = [op for op in opinfo.OPS if _ops.kernel(op, "numba") is not None]


def samples(op, dtype):
    return opinfo.OPS[op].samples(np.random.default_rng(0), dtype)


def call(op, sample, read_only=False):
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in sample.args]  # in-place updates
    for i, a in enumerate(args):
        if read_only and isinstance(a, np.ndarray) and i not in opinfo.OPS[op].in_place:
            a.flags.writeable = False
    try:
        warmup._public(op)(*args, **sample.kwargs)
    except (ValueError, TypeError, NotImplementedError):  # samples of errors
        pass


first = {}
with fastnn.use_backend("numba"):
    call("relu", samples("relu", np.float32)[0])  # Numba's own start-up (imports, threading layer) is not an op's
    for op in ops:
        sample = samples(op, np.float32)[0]
        started = time.perf_counter()
        call(op, sample)
        first[op] = time.perf_counter() - started


def signatures():
    found = {}
    for family in set(_ops.FAMILY_OF.values()):
        module = importlib.import_module("fastnn.kernels.numba." + family)
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher):
                found[f"{family}.{name}"] = {str(s) for s in obj.signatures}
    return found


warmup._compile(ops)  # its calls (loaded from the cache): the signatures warmup compiles
before = signatures()
with fastnn.use_backend("numba"):
    for op in ops:
        for dtype in (np.float32, np.float64):
            for sample in samples(op, dtype):
                call(op, sample)
                call(op, sample, read_only=True)  # Numba types read-only arrays apart
after = signatures()
new = {k: sorted(after[k] - before.get(k, set())) for k in after if after[k] - before.get(k, set())}
print("RESULT", json.dumps({"first": first, "new": new}))
'''


@pytest.fixture(scope="module")
def result():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=HERE, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    line = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_the_suites_samples_compile_nothing_warmup_did_not(result):
    assert result["new"] == {}, "signatures compiled beyond warmup's: add cases to fastnn/warmup.py"


def test_first_call_of_each_op_in_a_fresh_process_is_quick(result):
    slow = {op: round(s, 3) for op, s in result["first"].items() if s > 0.2}
    assert slow == {}, "first calls over 0.2 s (compiling?)"
