"""bench's ThreeLayerConvNet training step in PyTorch, plain and converted to fastnn
(fastnn.torch.convert), in alternate steps of one process: whole steps, or each layer inside the step
(the hand-offs between torch's and fastnn's thread pools show up there, not in isolated calls).

    cd bench && python probes/torch_step_layers.py [--backends auto,cython] [--steps 60] [--threads N] [--layers]

Without --layers: step times (Adam, zero_grad, forward, loss, backward), torch and the converted
model on each fastnn backend named, interleaved; median, min, and the median over steps of the
ratio of torch's step to the converted model's next one. With --layers (one backend): module hooks
time each layer's forward and backward (from its full backward pre-hook to its backward hook; none
on the first layer, whose input needs no gradient); "backward (rest)" is the part of backward()
outside the hooked layers (the first layer's backward, the loss's, the engine and the gaps). Hooks
add their own cost: compare layers, not these steps, with the step mode's.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import workloads  # noqa: E402  (bench/workloads.py: the benchmark's weights and data)

import fastnn  # noqa: E402


def instrument(model, times, label):
    """Forward and backward hooks on each layer adding (label, phase, layer) -> ms lists to `times`."""
    started = {}

    def record(key, start):
        times.setdefault(key, []).append((time.perf_counter() - start) * 1e3)

    for i, layer in enumerate(model):
        name = f"{i} {type(layer).__name__}"

        def forward_pre(module, args, name=name):
            started[("forward", name)] = time.perf_counter()

        def forward_post(module, args, output, name=name):
            record((label, "forward", name), started[("forward", name)])

        def backward_pre(module, grad_output, name=name):
            started[("backward", name)] = time.perf_counter()

        def backward_post(module, grad_input, grad_output, name=name):
            record((label, "backward", name), started[("backward", name)])

        layer.register_forward_pre_hook(forward_pre)
        layer.register_forward_hook(forward_post)
        if i > 0:
            layer.register_full_backward_pre_hook(backward_pre)
            layer.register_full_backward_hook(backward_post)


def make_step(torch, inp, label, times=None):
    """A training step of the workload's model: plain torch, or converted and run on fastnn backend `label`."""
    import fastnn.torch as ft

    model, optimizer = workloads.convnet_torch_model(torch, inp)
    loss_fn = torch.nn.functional.cross_entropy
    backend = None
    if label != "torch":
        model, loss_fn, backend = ft.convert(model), ft.cross_entropy, label
    if times is not None:
        instrument(model, times, label)
    x, y = torch.from_numpy(inp["x"]), torch.from_numpy(inp["y"])

    def step():
        with fastnn.use_backend(backend or fastnn.get_backend()):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            scores = model(x)
            t1 = time.perf_counter()
            loss = loss_fn(scores, y)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
        if times is not None:
            hooked = sum(v[-1] for k, v in times.items() if k[0] == label and k[1] == "backward")
            for key, ms in (("forward (all)", (t1 - t0) * 1e3), ("loss", (t2 - t1) * 1e3),
                            ("backward (all)", (t3 - t2) * 1e3), ("backward (rest)", (t3 - t2) * 1e3 - hooked),
                            ("adam", (t4 - t3) * 1e3), ("step", (t4 - t0) * 1e3)):
                times.setdefault((label, "", key), []).append(ms)
        return (t4 - t0) * 1e3
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="auto", help="fastnn backends for the converted model, comma-separated")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (fastnn follows)")
    parser.add_argument("--layers", action="store_true", help="time each layer (the first backend only)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    inp = workloads._convnet_inputs(np.random.default_rng(0))
    backends = args.backends.split(",")[:1] if args.layers else args.backends.split(",")
    labels = ["torch"] + backends
    times = {} if args.layers else None
    steps = {label: make_step(torch, inp, label, times) for label in labels}
    for _ in range(5):
        for step in steps.values():
            step()
    if times is not None:
        times.clear()
    ms = {label: [] for label in labels}
    for _ in range(args.steps):
        for label, step in steps.items():
            ms[label].append(step())
    print(f"{torch.get_num_threads()} torch threads, fastnn {fastnn.get_num_threads()}; {args.steps} steps, ms")
    if times is None:
        for label in labels:
            line = f"  {label:8s} median {np.median(ms[label]):7.3f}  min {min(ms[label]):7.3f}"
            if label != "torch":
                ratios = np.array(ms["torch"]) / np.array(ms[label])
                line += (f"   torch / this: median of step ratios {np.median(ratios):.2f}x, "
                         f"of medians {np.median(ms['torch']) / np.median(ms[label]):.2f}x, "
                         f"of mins {min(ms['torch']) / min(ms[label]):.2f}x")
            print(line)
        return
    keys = sorted({k[1:] for k in times}, key=lambda k: (k[0] != "forward", k[0] != "", k[0], k[1]))
    print(f"  {'median (min)':28s} {'torch':>16s} {backends[0]:>16s}")
    for phase, name in keys:
        cells = []
        for label in labels:
            values = times.get((label, phase, name))
            cells.append(f"{np.median(values):7.3f} ({min(values):6.3f})" if values else "")
        print(f"  {(phase + ' ' + name).strip():28s} {cells[0]:>16s} {cells[1]:>16s}")


if __name__ == "__main__":
    main()
