"""cs231n assignment 2's `layers.py`, `fast_layers.py` and `optim.py`, backed by fastnn kernels.

Same names, signatures and conventions: `*_forward(...) -> (out, cache)`, `*_backward(dout,
cache)`; conv_param {'stride', 'pad'}; pool_param {'pool_height', 'pool_width', 'stride'};
bn_param {'mode': 'train'|'test', 'eps', 'momentum'} with the running statistics stored in it as
`momentum * running + (1 - momentum) * batch` (momentum 0.9, biased batch variance); dropout_param
{'p' (keep probability), 'mode', 'seed'}; update rules `rule(w, dw, config) -> (next_w, config)`
with sgd_momentum's velocity `v = mu * v - lr * dw`. Inputs may be lists or integer arrays
(converted to float64); float32 arrays stay float32 unless mixed with float64.
"""
import numpy as np

import fastnn

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward", "dropout_forward", "dropout_backward",
    "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive", "max_pool_backward_naive",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward", "svm_loss", "softmax_loss",
    "conv_forward_fast", "conv_backward_fast", "conv_forward_im2col", "conv_backward_im2col",
    "conv_forward_strides", "conv_backward_strides", "max_pool_forward_fast", "max_pool_backward_fast",
    "max_pool_forward_reshape", "max_pool_backward_reshape", "max_pool_forward_im2col",
    "max_pool_backward_im2col", "affine_relu_forward", "affine_relu_backward",
    "conv_relu_forward", "conv_relu_backward", "conv_relu_pool_forward", "conv_relu_pool_backward",
    "sgd", "sgd_momentum", "rmsprop", "adam",
]


def _floats(*arrays):
    """Arrays (lists, ints accepted) as one float dtype: float64 unless all are float32."""
    converted = [None if a is None else np.asarray(a) for a in arrays]
    floats = [a for a in converted if a is not None]
    all_f32 = all(a.dtype == np.float32 for a in floats)
    dtype = np.float32 if all_f32 else np.float64
    out = [None if a is None else np.asarray(a, dtype=dtype) for a in converted]
    return out[0] if len(out) == 1 else out


# --- layers.py --------------------------------------------------------------------------------

def affine_forward(x, w, b):
    """Forward pass of an affine (fully connected) layer: out = x.reshape(N, D) @ w + b.

    Inputs:
    - x: input data of shape (N, d_1, ..., d_k), D = d_1 * ... * d_k
    - w: weights of shape (D, M)
    - b: biases of shape (M,)

    Returns a tuple of:
    - out: output of shape (N, M)
    - cache: (x, w, b)
    """
    x, w, b = _floats(x, w, b)
    return fastnn.linear(x, w, b), (x, w, b)


def affine_backward(dout, cache):
    """Backward pass of an affine layer.

    Inputs:
    - dout: upstream derivative of shape (N, M)
    - cache: affine_forward's cache (x, w, b)

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, d_1, ..., d_k)
    - dw: gradient with respect to w, of shape (D, M)
    - db: gradient with respect to b, of shape (M,)
    """
    x, w, _ = cache
    return fastnn.linear_backward(_floats(dout).astype(x.dtype, copy=False), x, w)


def relu_forward(x):
    """Forward pass of rectified linear units: out = max(x, 0).

    Inputs:
    - x: inputs, of any shape

    Returns a tuple of:
    - out: output, of the same shape as x
    - cache: x
    """
    x = _floats(x)
    return fastnn.relu(x), x


def relu_backward(dout, cache):
    """Backward pass of rectified linear units: dx = dout where x > 0, else 0.

    Inputs:
    - dout: upstream derivatives, of any shape
    - cache: input x, of the same shape as dout

    Returns:
    - dx: gradient with respect to x
    """
    x = cache
    return fastnn.relu_backward(np.asarray(dout, x.dtype), x)


def _bn_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    if mode not in ("train", "test"):
        raise ValueError(f"batchnorm_forward: invalid forward batchnorm mode {mode!r}")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    channels = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(channels, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(channels, dtype=x.dtype))
    if mode == "train":
        out, mean, invstd = fastnn.batch_norm(x, gamma, beta, training=True, eps=eps)
        batch_var = 1 / invstd.astype(np.float64) ** 2 - eps  # the biased variance the kernel used
        running_mean = momentum * running_mean + (1 - momentum) * mean
        running_var = momentum * running_var + (1 - momentum) * batch_var.astype(x.dtype)
    else:
        running_mean, running_var = _floats(running_mean, running_var)
        out, mean, invstd = fastnn.batch_norm(x, gamma, beta, running_mean.astype(x.dtype),
                                              running_var.astype(x.dtype), training=False, eps=eps)
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, (x, gamma, mean, invstd, mode == "train")


def batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of batch normalization, statistics per column.

    Train mode normalizes with the batch mean and (biased) variance and updates bn_param's
    running statistics as running = momentum * running + (1 - momentum) * batch (cs231n's
    convention: momentum 0.9 here is torch's 0.1); test mode normalizes with them.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale parameter of shape (D,)
    - beta: shift parameter of shape (D,)
    - bn_param: dictionary with keys:
      - mode: 'train' or 'test'; required
      - eps: constant for numeric stability (default 1e-5)
      - momentum: constant for the running mean / variance (default 0.9)
      - running_mean: array of shape (D,), written by train mode
      - running_var: array of shape (D,), written by train mode

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: a tuple of values needed in the backward pass
    """
    x, gamma, beta = _floats(x, gamma, beta)
    return _bn_forward(x, gamma, beta, bn_param)


def batchnorm_backward(dout, cache):
    """Backward pass of batch normalization (also batchnorm_backward_alt and
    spatial_batchnorm_backward: one fused kernel).

    Inputs:
    - dout: upstream derivatives, of shape (N, D) (or (N, C, H, W) for the spatial form)
    - cache: the forward's cache

    Returns a tuple of:
    - dx: gradient with respect to the inputs x, of x's shape
    - dgamma: gradient with respect to the scale parameter gamma
    - dbeta: gradient with respect to the shift parameter beta
    """
    x, gamma, mean, invstd, training = cache
    return fastnn.batch_norm_backward(np.asarray(dout, x.dtype), x, gamma, mean, invstd, training=training)


batchnorm_backward_alt = batchnorm_backward


def _normalize_columns(x2d, eps):
    """Each column of x2d normalized to zero mean, unit variance (fastnn's batch_norm, no affine)."""
    if len(x2d) == 1:
        # One value per column (layer norm of one feature, a group of one value) normalizes to 0, as
        # in cs231n and torch's layer_norm; training batch_norm refuses it, its eval form with the
        # value as mean and a zero variance computes it (and the training backward gives dx = 0).
        y, mean, invstd = fastnn.batch_norm(x2d, None, None, x2d[0].copy(), np.zeros_like(x2d[0]),
                                            training=False, eps=eps)
    else:
        y, mean, invstd = fastnn.batch_norm(x2d, None, None, training=True, eps=eps)
    return y, (x2d, mean, invstd)


def _normalize_columns_backward(dy, cache):
    x2d, mean, invstd = cache
    return fastnn.batch_norm_backward(dy, x2d, None, mean, invstd, training=True)[0]


def layernorm_forward(x, gamma, beta, ln_param):
    """Forward pass of layer normalization: each sample normalized over its features,
    then gamma * x_hat + beta.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale parameter of shape (D,)
    - beta: shift parameter of shape (D,)
    - ln_param: dictionary with key:
      - eps: constant for numeric stability (default 1e-5)

    Returns a tuple of:
    - out: of shape (N, D)
    - cache: a tuple of values needed in the backward pass
    """
    x, gamma, beta = _floats(x, gamma, beta)
    x_hat_t, norm_cache = _normalize_columns(np.ascontiguousarray(x.T), ln_param.get("eps", 1e-5))
    x_hat = x_hat_t.T
    return gamma * x_hat + beta, (x_hat, gamma, norm_cache)


def layernorm_backward(dout, cache):
    """Backward pass of layer normalization.

    Inputs:
    - dout: upstream derivatives, of shape (N, D)
    - cache: layernorm_forward's cache

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, D)
    - dgamma: gradient with respect to gamma, of shape (D,)
    - dbeta: gradient with respect to beta, of shape (D,)
    """
    x_hat, gamma, norm_cache = cache
    dout = np.asarray(dout, x_hat.dtype)
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx = _normalize_columns_backward(np.ascontiguousarray((dout * gamma).T), norm_cache).T
    return np.ascontiguousarray(dx), dgamma, dbeta


def dropout_forward(x, dropout_param):
    """Forward pass of inverted dropout: keep each unit with probability p and scale by
    1 / p in train mode; identity in test mode.

    Inputs:
    - x: input data, of any shape
    - dropout_param: dictionary with keys:
      - p: the probability of KEEPING each neuron output
      - mode: 'train' or 'test'
      - seed: seed for NumPy's global random generator (as cs231n), optional

    Returns a tuple of:
    - out: array of the same shape as x
    - cache: (dropout_param, mask); mask is None in test mode
    """
    x = _floats(x)
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    if mode == "train":
        mask = ((np.random.rand(*x.shape) < p) / p).astype(x.dtype)
        out = x * mask
    elif mode == "test":
        out = x
    else:
        raise ValueError(f"dropout_forward: invalid mode {mode!r}")
    return out.astype(x.dtype, copy=False), (dropout_param, mask)


def dropout_backward(dout, cache):
    """Backward pass of inverted dropout.

    Inputs:
    - dout: upstream derivatives, of any shape
    - cache: (dropout_param, mask) from dropout_forward

    Returns:
    - dx: dout * mask in train mode, dout in test mode
    """
    dropout_param, mask = cache
    return dout * mask if dropout_param["mode"] == "train" else dout


def _conv_geometry(conv_param):
    return conv_param.get("stride", 1), conv_param.get("pad", 0)


def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer (also conv_forward_fast, _im2col and _strides:
    the same fastnn kernel).

    Inputs:
    - x: input data of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dictionary with keys:
      - 'stride': pixels between adjacent receptive fields (default 1)
      - 'pad': zeros padded on each side of H and W (default 0)

    Returns a tuple of:
    - out: output data of shape (N, F, H', W'), H' = 1 + (H + 2 * pad - HH) // stride,
      W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param)
    """
    x, w, b = _floats(x, w, b)
    stride, pad = _conv_geometry(conv_param)
    return fastnn.conv2d(x, w, b, stride=stride, padding=pad), (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Backward pass of a convolutional layer (also conv_backward_fast, _im2col, _strides).

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) as in conv_forward_naive

    Returns a tuple of:
    - dx: gradient with respect to x
    - dw: gradient with respect to w
    - db: gradient with respect to b
    """
    x, w, _, conv_param = cache
    stride, pad = _conv_geometry(conv_param)
    return fastnn.conv2d_backward(np.asarray(dout, x.dtype), x, w, stride=stride, padding=pad)


def _pool_geometry(pool_param):
    kernel = (pool_param.get("pool_height", 2), pool_param.get("pool_width", 2))
    return kernel, pool_param.get("stride", 2)


def max_pool_forward_naive(x, pool_param):
    """Forward pass of a max-pooling layer (also max_pool_forward_fast, _reshape, _im2col).

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - pool_param: dictionary with keys:
      - 'pool_height': the height of each pooling region (default 2)
      - 'pool_width': the width of each pooling region (default 2)
      - 'stride': the distance between adjacent pooling regions (default 2)

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W'), H' = 1 + (H - pool_height) // stride,
      W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param)
    """
    x = _floats(x)
    kernel, stride = _pool_geometry(pool_param)
    return fastnn.max_pool2d(x, kernel, stride), (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Backward pass of a max-pooling layer (also max_pool_backward_fast, _reshape, _im2col).

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as in the forward pass

    Returns:
    - dx: gradient with respect to x (a tie goes to the first maximum of the window)
    """
    x, pool_param = cache
    kernel, stride = _pool_geometry(pool_param)
    return fastnn.max_pool2d_backward(np.asarray(dout, x.dtype), x, kernel, stride)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Forward pass of spatial batch normalization: statistics per channel over (N, H, W).

    Inputs:
    - x: input data of shape (N, C, H, W)
    - gamma: scale parameter, of shape (C,)
    - beta: shift parameter, of shape (C,)
    - bn_param: dictionary with keys as in batchnorm_forward (mode, eps, momentum,
      running_mean, running_var)

    Returns a tuple of:
    - out: output data, of shape (N, C, H, W)
    - cache: values needed for the backward pass (spatial_batchnorm_backward)
    """
    x, gamma, beta = _floats(x, gamma, beta)
    return _bn_forward(x, gamma, beta, bn_param)


spatial_batchnorm_backward = batchnorm_backward


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    """Forward pass of spatial group normalization: each sample's G channel groups
    normalized over (C // G, H, W).

    Inputs:
    - x: input data of shape (N, C, H, W)
    - gamma: scale parameter, of shape (1, C, 1, 1)
    - beta: shift parameter, of shape (1, C, 1, 1)
    - G: integer number of groups to split into, should be a divisor of C
    - gn_param: dictionary with key:
      - eps: constant for numeric stability (default 1e-5)

    Returns a tuple of:
    - out: output data, of shape (N, C, H, W)
    - cache: values needed for the backward pass
    """
    x, gamma, beta = _floats(x, gamma, beta)
    n, c, h, w = x.shape
    if c % G:
        raise ValueError(f"spatial_groupnorm_forward: G = {G} does not divide the {c} channels")
    groups_t = np.ascontiguousarray(x.reshape(n * G, -1).T)  # one column per (sample, group)
    x_hat_t, norm_cache = _normalize_columns(groups_t, gn_param.get("eps", 1e-5))
    x_hat = x_hat_t.T.reshape(x.shape)
    return gamma * x_hat + beta, (x_hat, gamma, G, norm_cache)


def spatial_groupnorm_backward(dout, cache):
    """Backward pass of spatial group normalization.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H, W)
    - cache: values from the forward pass

    Returns a tuple of:
    - dx: gradient with respect to inputs, of shape (N, C, H, W)
    - dgamma: gradient with respect to the scale parameter, of shape (1, C, 1, 1)
    - dbeta: gradient with respect to the shift parameter, of shape (1, C, 1, 1)
    """
    x_hat, gamma, G, norm_cache = cache
    dout = np.asarray(dout, x_hat.dtype)
    n = x_hat.shape[0]
    dgamma = np.sum(dout * x_hat, axis=(0, 2, 3), keepdims=True)
    dbeta = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    dxhat_t = np.ascontiguousarray((dout * gamma).reshape(n * G, -1).T)
    dx = _normalize_columns_backward(dxhat_t, norm_cache).T.reshape(x_hat.shape)
    return np.ascontiguousarray(dx), dgamma, dbeta


def svm_loss(x, y):
    """Loss and gradient of multiclass SVM classification (margin 1, mean over the batch).

    Inputs:
    - x: input data, of shape (N, C) where x[i, j] is the score for the jth class of the ith input
    - y: vector of labels, of shape (N,) where y[i] is the label for x[i] and 0 <= y[i] < C

    Returns a tuple of:
    - loss: scalar giving the loss
    - dx: gradient of the loss with respect to x
    """
    return fastnn.hinge_loss(_floats(x), np.asarray(y))


def softmax_loss(x, y):
    """Loss and gradient of softmax classification (cross-entropy, mean over the batch).

    Inputs:
    - x: input data, of shape (N, C) where x[i, j] is the score for the jth class of the ith input
    - y: vector of labels, of shape (N,) where y[i] is the label for x[i] and 0 <= y[i] < C

    Returns a tuple of:
    - loss: scalar giving the loss
    - dx: gradient of the loss with respect to x
    """
    return fastnn.softmax_cross_entropy(_floats(x), np.asarray(y))


# --- fast_layers.py (the same fastnn kernels under every name) -----------------------------------

conv_forward_fast = conv_forward_im2col = conv_forward_strides = conv_forward_naive
conv_backward_fast = conv_backward_im2col = conv_backward_strides = conv_backward_naive
max_pool_forward_fast = max_pool_forward_reshape = max_pool_forward_im2col = max_pool_forward_naive
max_pool_backward_fast = max_pool_backward_reshape = max_pool_backward_im2col = max_pool_backward_naive


# --- layer_utils.py sandwiches --------------------------------------------------------------------

def affine_relu_forward(x, w, b):
    """Convenience layer: an affine transform followed by a ReLU.

    Inputs:
    - x: input to the affine layer
    - w, b: weights for the affine layer

    Returns a tuple of:
    - out: output from the ReLU
    - cache: object to give to the backward pass
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of the affine-relu convenience layer.

    Inputs:
    - dout: upstream derivatives
    - cache: affine_relu_forward's cache

    Returns a tuple of:
    - dx, dw, db: gradients with respect to x, w and b
    """
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def conv_relu_forward(x, w, b, conv_param):
    """Convenience layer: a convolution followed by a ReLU.

    Inputs:
    - x: input to the convolutional layer
    - w, b, conv_param: weights and parameters for the convolutional layer

    Returns a tuple of:
    - out: output from the ReLU
    - cache: object to give to the backward pass
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache):
    """Backward pass of the conv-relu convenience layer.

    Inputs:
    - dout: upstream derivatives
    - cache: conv_relu_forward's cache

    Returns a tuple of:
    - dx, dw, db: gradients with respect to x, w and b
    """
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convenience layer: a convolution, a ReLU and a max pool.

    Inputs:
    - x: input to the convolutional layer
    - w, b, conv_param: weights and parameters for the convolutional layer
    - pool_param: parameters for the pooling layer

    Returns a tuple of:
    - out: output from the pooling layer
    - cache: object to give to the backward pass
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache):
    """Backward pass of the conv-relu-pool convenience layer.

    Inputs:
    - dout: upstream derivatives
    - cache: conv_relu_pool_forward's cache

    Returns a tuple of:
    - dx, dw, db: gradients with respect to x, w and b
    """
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_backward_fast(relu_backward(ds, relu_cache), conv_cache)


# --- optim.py -----------------------------------------------------------------------------------

def _rule_inputs(w, dw, config):
    config = {} if config is None else config
    w, dw = _floats(w, dw)
    return w, dw, config


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: w -= learning_rate * dw, in place on a float array w.

    Inputs:
    - w: a numpy array giving the current weights
    - dw: a numpy array of the same shape as w giving the gradient of the loss with respect to w
    - config: a dictionary with key (None: defaults):
      - learning_rate: scalar learning rate (default 1e-2)

    Returns a tuple of:
    - next_w: the updated weights (w itself)
    - config: the config dictionary, to pass to the next iteration
    """
    w, dw, config = _rule_inputs(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    fastnn.sgd_step(w, dw, None, config["learning_rate"])
    return w, config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum: v = momentum * v - learning_rate * dw;
    next_w = w + v.

    Inputs:
    - w: a numpy array giving the current weights
    - dw: a numpy array of the same shape as w giving the gradient of the loss with respect to w
    - config: a dictionary with keys (None: defaults):
      - learning_rate: scalar learning rate (default 1e-2)
      - momentum: scalar between 0 and 1 giving the momentum value (default 0.9)
      - velocity: a numpy array of the same shape as w storing a moving average of the
        gradients (default zeros)

    Returns a tuple of:
    - next_w: the updated weights (a new array)
    - config: the config dictionary with the new velocity
    """
    w, dw, config = _rule_inputs(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    lr, mu = config["learning_rate"], config["momentum"]
    v = np.asarray(config.get("velocity", np.zeros_like(w)), dtype=w.dtype)
    next_w = w.copy()
    if lr and mu:
        # fastnn's buffer b = mu * b + dw with w -= lr * b is cs231n's velocity with v = -lr * b.
        buffer = v / -lr
        fastnn.sgd_step(next_w, dw, buffer, lr, mu)
        v = buffer * -lr
    else:
        v = mu * v - lr * dw
        next_w += v
    config["velocity"] = v
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: cache = decay_rate * cache + (1 - decay_rate) * dw**2;
    next_w = w - learning_rate * dw / (sqrt(cache) + epsilon).

    Inputs:
    - w, dw: the current weights and the gradient, of the same shape
    - config: a dictionary with keys (None: defaults):
      - learning_rate: scalar learning rate (default 1e-2)
      - decay_rate: scalar between 0 and 1 giving the decay rate of the squared gradient
        cache (default 0.99)
      - epsilon: small scalar used for smoothing to avoid dividing by zero (default 1e-8)
      - cache: moving average of the second moments of gradients (default zeros)

    Returns a tuple of:
    - next_w: the updated weights (a new array)
    - config: the config dictionary with the new cache
    """
    w, dw, config = _rule_inputs(w, dw, config)
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    cache = np.array(config.get("cache", np.zeros_like(w)), dtype=w.dtype)
    next_w = w.copy()
    fastnn.rmsprop_step(next_w, dw, cache, config["learning_rate"], config["decay_rate"], config["epsilon"])
    config["cache"] = cache
    return next_w, config


def adam(w, dw, config=None):
    """Adam with bias correction (the step count t is incremented before the update).

    Inputs:
    - w, dw: the current weights and the gradient, of the same shape
    - config: a dictionary with keys (None: defaults):
      - learning_rate: scalar learning rate (default 1e-3)
      - beta1: decay rate for the moving average of the first moment (default 0.9)
      - beta2: decay rate for the moving average of the second moment (default 0.999)
      - epsilon: small scalar used for smoothing to avoid dividing by zero (default 1e-8)
      - m: moving average of the gradient (default zeros)
      - v: moving average of the squared gradient (default zeros)
      - t: iteration number (default 0)

    Returns a tuple of:
    - next_w: the updated weights (a new array)
    - config: the config dictionary with the new m, v and t
    """
    w, dw, config = _rule_inputs(w, dw, config)
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    m = np.array(config["m"], dtype=w.dtype)
    v = np.array(config["v"], dtype=w.dtype)
    config["t"] += 1
    next_w = w.copy()
    fastnn.adam_step(next_w, dw, m, v, config["t"], config["learning_rate"], config["beta1"], config["beta2"],
                     config["epsilon"])
    config["m"], config["v"] = m, v
    return next_w, config
