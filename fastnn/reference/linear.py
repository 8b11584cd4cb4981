"""Plain-NumPy fully connected layer (cs231n layout: w is (D_in, D_out)); x arrives as (N, D_in)."""


def linear(x, w, b):
    y = x @ w
    return y if b is None else y + b


def linear_backward(dy, x, w, input_grad=True):
    return (dy @ w.T if input_grad else None), x.T @ dy, dy.sum(axis=0)
