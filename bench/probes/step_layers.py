"""Time each layer of bench's ThreeLayerConvNet training step, inside the step (the hand-offs
between thread pools show up there, not in isolated calls).

    cd bench && python probes/step_layers.py [--backend cython|numba|auto] [--steps 40]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import workloads  # noqa: E402  (bench/workloads.py: the benchmark's weights and data)

import fastnn  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    fastnn.set_backend(args.backend)
    inp = workloads._convnet_inputs(np.random.default_rng(0))
    model, optimizer = workloads.convnet_model(inp)
    x, y = inp["x"], inp["y"]
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(model.layers)]
    times = {}

    def tick(key, start):
        now = time.perf_counter()
        times.setdefault(key, []).append((now - start) * 1e3)
        return now

    def step():
        t, h = time.perf_counter(), x
        for name, layer in zip(names, model.layers):
            h = layer.forward(h)
            t = tick(f"forward {name}", t)
        _, d = fastnn.softmax_cross_entropy(h, y)
        t = tick("loss", t)
        for i in range(len(model.layers) - 1, -1, -1):
            d = model.layers[i].backward(d, input_grad=i > 0)
            t = tick(f"backward {names[i]}", t)
        optimizer.step(model.params, model.grads)
        tick("adam", t)

    for _ in range(5):
        step()
    times.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    print(f"{args.backend}: {(time.perf_counter() - start) / args.steps * 1e3:.2f} ms per step (mean)")
    for key, values in times.items():
        print(f"  {key:20s} min {min(values):7.3f}  median {np.median(values):7.3f}  mean {np.mean(values):7.3f} ms")


if __name__ == "__main__":
    main()
