"""Scale-out: data-parallel training over MPI (two ranks under mpiexec against one process, float64)
and random_search on executors (process pools, dask) against the serial search."""
import concurrent.futures
import functools
import importlib.util
import io
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import distributed, train

import _mpi_scenarios as scenarios
import _trials

HERE = Path(__file__).resolve().parent
MPIEXEC = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it beside the interpreter
TOLERANCE = 1e-10  # float64: only the order of the reductions differs from one process


needs_mpi = pytest.mark.skipif(not (importlib.util.find_spec("mpi4py") and MPIEXEC.exists()),
                               reason="needs mpi4py and mpiexec beside the interpreter (the distributed extra)")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run tests/_mpi_scenarios.py on two ranks once; each rank's arrays and the job's output."""
    outdir = tmp_path_factory.mktemp("mpi")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the default thread share
    command = [str(MPIEXEC), "-n", "2", sys.executable, str(HERE / "_mpi_scenarios.py"), str(outdir)]
    run = subprocess.run(command, cwd=HERE, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [dict(np.load(outdir / f"rank{r}.npz")) for r in range(2)]
    return ranks, run.stdout, outdir


@pytest.fixture(scope="module")
def one_process():
    """The same scenarios without MPI: one process, the whole global batches."""
    out = scenarios.solver_run(stream=io.StringIO())
    out.update(scenarios.dp_run())
    return out


def _assert_close(got, expected, name):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, name
    err = float(np.max(np.abs(got - expected))) if got.size else 0.0
    assert err <= TOLERANCE, f"{name}: max |difference| {err:.2e}"


@needs_mpi
@pytest.mark.parametrize("rank", [0, 1])
def test_solver_on_two_ranks_matches_one_process(two_ranks, one_process, rank):
    got = two_ranks[0][rank]
    keys = [k for k in one_process if k.startswith("solver/")]
    assert any("running_var" in k for k in keys) and any("solver/params/6" in k for k in keys)  # BN 2-d and 1-d
    assert len(one_process["solver/loss"]) == 12  # 5 batches of 7 and one of 2 per epoch
    for key in keys:
        _assert_close(got[key], one_process[key], key)


@needs_mpi
def test_only_rank_0_prints_and_writes_the_checkpoint(two_ranks, one_process):
    _, stdout, outdir = two_ranks
    assert stdout.count("(Epoch 1 / 2)") == 1 and stdout.count("(Epoch 2 / 2)") == 1
    saved = np.load(outdir / "best.npz")
    for key in (k for k in one_process if k.startswith("solver/params/")):
        _assert_close(saved["params/" + key.split("/", 2)[2]], one_process[key], key)


@needs_mpi
@pytest.mark.parametrize("rank", [0, 1])
def test_data_parallel_matches_one_process(two_ranks, one_process, rank):
    """Gradients after each backward (global-batch averages), the input gradient of the rank's slice,
    the loss, and parameters and running statistics after the Adam steps."""
    got = two_ranks[0][rank]
    for step in range(scenarios.DP_STEPS):
        start, stop = got[f"dp/{step}/slice"]
        assert stop - start == (5, 4)[rank]
        _assert_close(got[f"dp/{step}/dx"], one_process[f"dp/{step}/dx"][start:stop], f"step {step} dx")
        _assert_close(got[f"dp/{step}/loss"], one_process[f"dp/{step}/loss"], f"step {step} loss")
        for key in (k for k in one_process if k.startswith(f"dp/{step}/grads/")):
            _assert_close(got[key], one_process[key], key)
    for key in (k for k in one_process if k.startswith(("dp/params/", "dp/buffers/"))):
        _assert_close(got[key], one_process[key], key)


@needs_mpi
def test_each_rank_uses_its_share_of_the_cores(two_ranks):
    share = max(1, fastnn._threads._MAX_THREADS // 2)
    assert [int(r["threads"]) for r in two_ranks[0]] == [share, share]
    chosen = fastnn._threads._MAX_THREADS  # after fastnn.set_num_threads, DataParallel leaves the count alone
    assert [int(r["threads_chosen"]) for r in two_ranks[0]] == [chosen, chosen]


def test_local_slice_splits_like_array_split():
    for n in range(0, 12):
        for size in (1, 2, 3, 5):
            expected = [len(part) for part in np.array_split(np.arange(n), size)]
            slices = [distributed.local_slice(n, r, size) for r in range(size)]
            assert [stop - start for start, stop in slices] == expected
            assert slices[0][0] == 0 and slices[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` raises ImportError
    with pytest.raises(ImportError, match=r"fastnn\[distributed\]"):
        distributed.DataParallel(scenarios.model(), comm=None)


# --- random search on executors -------------------------------------------------------------------

SEARCH = {"space": _trials.SPACE, "trials": 4, "seed": 3, "batch_size": 50}


@pytest.fixture(scope="module")
def serial_search():
    previous = fastnn._threads._explicit
    fastnn.set_num_threads(1)  # what each of two workers gets on two cores: the same reduction order
    try:
        return train.random_search(_trials.build, _trials.data(), **SEARCH)
    finally:
        fastnn._threads._explicit = previous


def _spawn_pool(workers=2):
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def test_search_on_a_process_pool_equals_the_serial_search(serial_search):
    with _spawn_pool() as pool:
        results = train.random_search(_trials.build, _trials.data(), executor=pool, **SEARCH)
    assert results == serial_search
    assert sorted(r["trial"] for r in results) == [0, 1, 2, 3]
    fine = train.refine(results, top_k=2)
    assert fine == train.refine(serial_search, top_k=2)


def test_search_on_a_thread_pool_equals_the_serial_search(serial_search, one_thread):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # threads need no pickling: a lambda is fine
        results = train.random_search(lambda **h: _trials.build(**h), _trials.data(), executor=pool, **SEARCH)
    assert results == serial_search


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed")
    import dask
    from distributed import Client, LocalCluster

    # a killed worker fails its task at once instead of being retried on the other workers
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=50) as cluster, Client(cluster) as client:
            yield client


def test_search_on_dask_equals_the_serial_search(serial_search, dask_client):
    results = train.random_search(_trials.build, _trials.data(), executor=dask_client, **SEARCH)
    assert results == serial_search
    results = train.random_search(_trials.build, _trials.data(), executor=dask_client.get_executor(), **SEARCH)
    assert results == serial_search


def _die_at(trial):
    """A build that kills its worker process in trial `trial` (of SEARCH's draws)."""
    lr = train._draw_trials(SEARCH["space"], SEARCH["trials"], SEARCH["seed"])[trial][0]["lr"]
    return functools.partial(_trials.build_or_die, die_at_lr=lr)


def _check_trial_error(error, trial, serial_search):
    assert f"trial {trial + 1}/4 (lr=" in str(error) and "worker process died" in str(error)
    assert trial in error.failed
    finished = {r["trial"]: r for r in serial_search}
    assert error.results and all(r == finished[r["trial"]] for r in error.results)  # kept, and right


def test_a_killed_pool_worker_names_the_trial_and_keeps_finished_ones(serial_search):
    with _spawn_pool() as pool:
        with pytest.raises(train.TrialError) as info:
            train.random_search(_die_at(2), _trials.data(), executor=pool, **SEARCH)
    _check_trial_error(info.value, 2, serial_search)
    assert type(info.value.failed[2]).__name__ == "BrokenProcessPool"


def test_a_killed_dask_worker_names_the_trial_and_keeps_finished_ones(serial_search, dask_client):
    with pytest.raises(train.TrialError) as info:
        train.random_search(_die_at(1), _trials.data(), executor=dask_client, **SEARCH)
    _check_trial_error(info.value, 1, serial_search)
    assert list(info.value.failed) == [1]  # dask fails only the trial whose worker died
    finished = sorted(r["trial"] for r in info.value.results)
    assert 0 in finished and sorted(finished + info.value.not_started) == [0, 2, 3]  # none lost, none run twice


def test_a_trial_that_raises_is_named(serial_search):
    lr = train._draw_trials(SEARCH["space"], SEARCH["trials"], SEARCH["seed"])[0][0]["lr"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        message = r"trial 1/4 \(lr=.*\) raised FloatingPointError: this trial"
        with pytest.raises(train.TrialError, match=message) as info:
            train.random_search(functools.partial(_trials.build_or_raise, raise_at_lr=lr), _trials.data(),
                                executor=pool, **SEARCH)
    assert info.value.failed.keys() == {0} and info.value.not_started == [1, 2, 3]
    assert isinstance(info.value.__cause__, FloatingPointError)


def test_build_must_be_picklable_for_a_process_pool():
    def local_build(lr, hidden):
        return _trials.build(lr, hidden)

    with _spawn_pool() as pool:  # no worker starts: the check comes before any submit
        with pytest.raises(TypeError, match="build must be picklable"):
            train.random_search(local_build, _trials.data(), executor=pool, **SEARCH)


# --- the examples ---------------------------------------------------------------------------------

EXAMPLES = HERE.parent / "examples"


def _held_out_accuracy(output):
    line = next(line for line in output.splitlines() if line.startswith("held-out accuracy: "))
    return float(line.split()[2])


@needs_mpi
def test_mpi_example_reaches_the_single_process_accuracy():
    pytest.importorskip("sklearn")
    command = [str(MPIEXEC), "-n", "2", sys.executable, str(EXAMPLES / "train_digits_mpi.py"), "--quiet"]
    run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("held-out accuracy") == 1  # rank 0 alone prints
    assert _held_out_accuracy(run.stdout) >= 0.98  # examples/train_digits.py's bar (tests/test_example.py)


def test_dask_example_searches_coarse_then_fine():
    pytest.importorskip("sklearn")
    pytest.importorskip("distributed")
    command = [sys.executable, str(EXAMPLES / "random_search_dask.py"), "--coarse-trials", "2", "--fine-trials", "2",
               "--epochs", "3"]
    run = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    for expected in ("dask: 2 workers", "coarse: 2 trials", "trial 2/2", "fine: 2 trials", "best: lr="):
        assert expected in run.stdout
    assert _held_out_accuracy(run.stdout) > 0.9
