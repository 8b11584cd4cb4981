"""Plain-NumPy fully connected layer (cs231n layout: w is (D_in, D_out)); x arrives as (N, D_in).

Each function takes the inputs, then the output arrays to fill (shapes from the meta functions in
fastnn/linear.py; dx None when it is not wanted), like the compiled kernels.
"""


def linear(x, w, b, y):
    y[...] = x @ w if b is None else x @ w + b


def linear_backward(dy, x, w, dx, dw, db):
    if dx is not None:
        dx[...] = dy @ w.T
    dw[...] = x.T @ dy
    db[...] = dy.sum(axis=0)
