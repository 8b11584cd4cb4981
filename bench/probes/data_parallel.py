"""Data-parallel training of bench's ThreeLayerConvNet: 2 ranks x 1 thread against 1 rank x 2 threads
(and 1 rank x 1 thread, for scale).

Global batch (50, 3, 32, 32) (workloads._convnet_inputs), Adam. The 2-rank run trains through
fastnn.distributed.DataParallel (25 samples per rank) and reports, per step: the time, the
communication the backward waited for with the allreduces started after the backward
(overlap=False: all of it), the part still waited for when each bucket's Iallreduce starts as soon
as its layers are done (overlap=True: what the overlap did not hide; a helper thread or tests
between layers drive MPI), and a bare Allreduce of the same gradients between synchronized ranks.
Communication is timed from the last rank's end of compute (perf_counter is one clock for the
processes of a machine), so waiting for a slower rank does not count.

    cd bench && python probes/data_parallel.py [--steps 30] [--rounds 5] [--repeat 2]

runs both configurations as subprocesses (`mpiexec -n 2` from beside the interpreter) and prints
the table; `--worker` is the per-process part.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import workloads  # noqa: E402  (bench/workloads.py: the benchmark's weights and data)

import fastnn  # noqa: E402


def _timed_steps(step, steps, barrier=None):
    """Seconds per step over `steps` steps (after a barrier, so ranks start together)."""
    if barrier is not None:
        barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def worker(args):
    inp = workloads._convnet_inputs(np.random.default_rng(0))
    model, optimizer = workloads.convnet_model(inp)
    x, y = inp["x"], inp["y"]
    if args.ranks == 1:
        fastnn.set_num_threads(args.threads)

        def step():
            scores = model.forward(x)
            _, dscores = fastnn.softmax_cross_entropy(scores, y)
            model.backward(dscores, input_grad=False)
            optimizer.step(model.params, model.grads)

        for _ in range(5):
            step()
        times = [_timed_steps(step, args.steps) for _ in range(args.rounds)]
        print("RESULT " + json.dumps({"ranks": 1, "threads": fastnn.get_num_threads(), "step": min(times)}))
        return

    from mpi4py import MPI

    from fastnn.distributed import DataParallel, local_slice

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    start, stop = local_slice(len(x), rank, size)
    xl, yl = x[start:stop], y[start:stop]
    nets = {"thread": DataParallel(model, comm, progress="thread"), "poll": DataParallel(model, comm, progress="poll"),
            "after": DataParallel(model, comm, overlap=False)}
    marks = []

    def stepper(net):
        def step():
            scores = net.forward(xl)
            loss, dscores = fastnn.softmax_cross_entropy(scores, yl)
            net.backward(dscores, input_grad=False, loss=loss)
            marks.append(net._marks)
            optimizer.step(net.params, net.grads)
        return step

    for net in nets.values():
        for _ in range(5):
            stepper(net)()
    result = {"ranks": size, "threads": fastnn.get_num_threads(), "buckets": len(nets["thread"]._buckets)}
    per_round = {name: [] for name in nets}
    for _ in range(args.rounds):  # alternate, so all see the same machine load
        for name, net in nets.items():
            marks.clear()
            seconds = _timed_steps(stepper(net), args.steps, comm.Barrier)
            # perf_counter is one clock for the processes of a machine: the communication still exposed is
            # the time from the last rank's end of compute to the end of the wait (rank skew excluded)
            every = np.array(comm.allgather(marks))  # (ranks, steps, 2)
            exposed = np.median(every[:, :, 1].max(0) - every[:, :, 0].max(0))
            per_round[name].append((seconds, exposed))
    for name in nets:  # the least disturbed round of each (the machine is shared)
        result[f"step_{name}"] = min(s for s, _ in per_round[name])
        result[f"exposed_{name}"] = float(min(e for _, e in per_round[name]))
    grads = np.concatenate([g.reshape(-1) for g in model.grads.values()])
    allreduce = []
    for _ in range(args.rounds * args.steps):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, grads)
        allreduce.append(time.perf_counter() - t)
    result["allreduce"] = float(np.median(allreduce))
    result["load"] = os.getloadavg()[0]
    result["grad_mb"] = grads.nbytes / 2 ** 20
    if rank == 0:
        print("RESULT " + json.dumps(result))


def _run(cmd):
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(HERE))
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    return json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[7:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration, alternated (best kept)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
          "--rounds", str(args.rounds)]
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    env_note = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else \
        "OMP_NUM_THREADS unset"
    load = os.getloadavg()[0]
    singles, ones, multis = [], [], []
    for _ in range(args.repeat):
        singles.append(_run(me + ["--ranks", "1", "--threads", str(min(2, os.cpu_count() or 1))]))
        ones.append(_run(me + ["--ranks", "1", "--threads", "1"]))  # context: one core's worth of work
        multis.append(_run([mpiexec, "-n", "2"] + me))
    single = min(singles, key=lambda r: r["step"])
    one = min(ones, key=lambda r: r["step"])
    multi = {k: min(r[k] for r in multis) if isinstance(v, float) else v for k, v in multis[0].items()}
    cores = os.cpu_count()
    print(f"ThreeLayerConvNet, global batch 50, Adam; best of {args.repeat} runs x {args.rounds} rounds x "
          f"{args.steps} steps ({env_note}); load average {load:.1f} before, {multis[-1]['load']:.1f} after, on "
          f"{cores} cores" + (": other processes compete, timings are noisy" if load > cores / 2 else ""))
    for r in (single, one):
        print(f"  1 rank  x {r['threads']} thread{'s' if r['threads'] > 1 else ' '}: {r['step'] * 1e3:7.2f} ms/step  "
              f"{1 / r['step']:6.1f} steps/s")
    for name, label in (("thread", "Iallreduce per bucket during the backward, progress thread"),
                        ("poll", "Iallreduce per bucket during the backward, tested between layers"),
                        ("after", "allreduces after the backward")):
        step = multi[f"step_{name}"]
        print(f"  2 ranks x {multi['threads']} thread:  {step * 1e3:7.2f} ms/step  {1 / step:6.1f} steps/s  "
              f"communication exposed {multi[f'exposed_{name}'] * 1e3:5.2f} ms/step  ({label})")
    comm = multi["exposed_after"]
    print(f"  gradients {multi['grad_mb']:.2f} MiB in {multi['buckets']} buckets; a bare Allreduce of them takes "
          f"{multi['allreduce'] * 1e3:.2f} ms between synchronized ranks")
    for name in ("thread", "poll"):
        print(f"  the overlap ({name}) hides {max(0.0, 1 - multi[f'exposed_{name}'] / comm) * 100:3.0f}% of the "
              f"{comm * 1e3:.2f} ms/step of communication")


if __name__ == "__main__":
    main()
