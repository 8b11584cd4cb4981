"""Optimizers: fused in-place update ops and the torch.optim-style classes built on them.

The ops (`sgd_step`, `adagrad_step`, `rmsprop_step`, `adam_step`) update `param` and its state
buffers in place in one pass over memory and return `param`. The classes keep the state per key
of the params dict: `opt.step(params, grads)` updates every array of `params` in place, with
torch.optim's update formulas and hyperparameters.
"""
import numpy as np

from . import _ops
from ._ops import Plan, call, meta
from ._validation import check_same_shape, flag, float_arrays, integer, real, within_dtype

__all__ = ["SGD", "AdaGrad", "RMSProp", "Adam", "sgd_step", "adagrad_step", "rmsprop_step", "adam_step"]


def _arrays(op, param, grad, **state):
    """Validated (param, grad, state...): one float dtype and one shape; param and state writable."""
    for name, value in {"param": param, **state}.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"{op}: {name} must be a numpy.ndarray (it is updated in place), got {type(value).__name__}"
            )
    arrays = float_arrays(op, contiguous=False, param=param, grad=grad, **state)
    param, grad, *state_arrays = arrays
    check_same_shape(op, "grad", grad, "param", param)
    for name, a in zip(state, state_arrays):
        check_same_shape(op, name, a, "param", param)
    for name, a in [("param", param), *zip(state, state_arrays)]:
        if not a.flags.writeable:
            raise ValueError(f"{op}: {name} is read-only (it is updated in place)")
    return param, np.asarray(grad, order="C"), state_arrays


def _in_place_plan(param, grad, state, params):
    """The Plan of a step: no outputs; the kernels update C-contiguous param and state buffers in
    place (the caller's own arrays, or copies of non-contiguous ones that `result` writes back) and
    the public function returns param. The work is param's element count. Kept lean: an
    optimizer's step is one call per tensor (bench "optim ... 200x10k")."""
    buffers = [param, *state]
    copies = False
    for i, a in enumerate(buffers):
        if a is not None and not a.flags.c_contiguous:
            buffers[i], copies = np.asarray(a, order="C"), True
    if copies:
        targets = (param, *state)

        def result(outputs, _):
            for target, buffer in zip(targets, buffers):
                if buffer is not target:
                    np.copyto(target, buffer)
            return param
    else:
        def result(outputs, _):
            return param

    return Plan((buffers[0], grad, *buffers[1:]), (), param.dtype, params, param.size, result)


@meta("sgd_step")
def _sgd_step_meta(param, grad, momentum_buffer=None, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
    op = "sgd_step"
    lr = real(op, "lr", lr, minimum=0.0)
    momentum = real(op, "momentum", momentum, minimum=0.0)
    weight_decay = real(op, "weight_decay", weight_decay, minimum=0.0)
    nesterov = flag(op, "nesterov", nesterov)
    if nesterov and momentum == 0:
        raise ValueError(f"{op}: nesterov requires momentum > 0, got momentum={momentum}")
    if momentum and momentum_buffer is None:
        raise ValueError(f"{op}: momentum_buffer is required when momentum > 0")
    if momentum:
        param, grad, state = _arrays(op, param, grad, momentum_buffer=momentum_buffer)
    else:  # plain SGD reads no buffer
        param, grad, state = _arrays(op, param, grad)
        state = [None]
    within_dtype(op, param.dtype, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return _in_place_plan(param, grad, state, (lr, momentum, nesterov, weight_decay))


@meta("adagrad_step")
def _adagrad_step_meta(param, grad, sum_sq, lr=0.01, eps=1e-10):
    op = "adagrad_step"
    lr = real(op, "lr", lr, minimum=0.0)
    eps = real(op, "eps", eps, minimum=0.0)
    param, grad, state = _arrays(op, param, grad, sum_sq=sum_sq)
    within_dtype(op, param.dtype, lr=lr, eps=eps)
    return _in_place_plan(param, grad, state, (lr, eps))


@meta("rmsprop_step")
def _rmsprop_step_meta(param, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8):
    op = "rmsprop_step"
    lr = real(op, "lr", lr, minimum=0.0)
    alpha = real(op, "alpha", alpha, minimum=0.0, maximum=1.0)
    eps = real(op, "eps", eps, minimum=0.0)
    param, grad, state = _arrays(op, param, grad, square_avg=square_avg)
    within_dtype(op, param.dtype, lr=lr, eps=eps)
    return _in_place_plan(param, grad, state, (lr, alpha, eps))


def _beta(op, name, value):
    value = real(op, name, value, minimum=0.0)
    if value >= 1:
        raise ValueError(f"{op}: {name} must be in [0, 1), got {value}")
    return value


@meta("adam_step")
def _adam_step_meta(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                    weight_decay=0.0):
    op = "adam_step"
    step = integer(op, "step", step, minimum=1, maximum=2 ** 63 - 1)  # a counter, not an index: any int64
    lr = real(op, "lr", lr, minimum=0.0)
    beta1 = _beta(op, "beta1", beta1)
    beta2 = _beta(op, "beta2", beta2)
    eps = real(op, "eps", eps, minimum=0.0)
    weight_decay = real(op, "weight_decay", weight_decay, minimum=0.0)
    param, grad, state = _arrays(op, param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    within_dtype(op, param.dtype, lr=lr, eps=eps, weight_decay=weight_decay)
    return _in_place_plan(param, grad, state, (step, lr, beta1, beta2, eps, weight_decay))


def sgd_step(param, grad, momentum_buffer=None, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's update (no dampening): b = m*b + g; p -= lr * (g + m*b if nesterov else b),
    with g = grad + weight_decay * p.

    Parameters
    ----------
    param : ndarray of float32 or float64
        Updated in place (any layout; a non-contiguous one is updated through a copy).
    grad : array_like, param's shape and dtype
    momentum_buffer : ndarray, param's shape, optional
        Updated in place; required when momentum > 0, and zeros before the first step (then
        b = g, torch's first step).
    lr, momentum, weight_decay : float >= 0
    nesterov : bool
        Requires momentum > 0.

    Returns
    -------
    param (the same array, updated).
    """
    return call("sgd_step", param, grad, momentum_buffer, lr, momentum, nesterov, weight_decay)


def adagrad_step(param, grad, sum_sq, lr=0.01, eps=1e-10):
    """torch.optim.Adagrad's update (no lr decay): s += g*g; p -= lr * g / (sqrt(s) + eps).

    Parameters
    ----------
    param : ndarray of float32 or float64
        Updated in place (any layout; a non-contiguous one is updated through a copy).
    grad : array_like, param's shape and dtype
    sum_sq : ndarray, param's shape
        The running sum of squared gradients, updated in place (zeros before the first step).
    lr, eps : float >= 0

    Returns
    -------
    param (the same array, updated).
    """
    return call("adagrad_step", param, grad, sum_sq, lr, eps)


def rmsprop_step(param, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8):
    """torch.optim.RMSprop's update (no momentum, not centred): s = alpha*s + (1-alpha)*g*g;
    p -= lr * g / (sqrt(s) + eps) (eps added after the square root, as torch).

    Parameters
    ----------
    param : ndarray of float32 or float64
        Updated in place (any layout; a non-contiguous one is updated through a copy).
    grad : array_like, param's shape and dtype
    square_avg : ndarray, param's shape
        Updated in place (zeros before the first step).
    lr, eps : float >= 0
    alpha : float in [0, 1]

    Returns
    -------
    param (the same array, updated).
    """
    return call("rmsprop_step", param, grad, square_avg, lr, alpha, eps)


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """torch.optim.Adam's update at step `step`, bias-corrected, with g = grad + weight_decay * p
    (L2, not AdamW's decoupled decay): m = lerp(m, g, 1-beta1); v = beta2*v + (1-beta2)*g*g;
    p -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps).

    Parameters
    ----------
    param : ndarray of float32 or float64
        Updated in place (any layout; a non-contiguous one is updated through a copy).
    grad : array_like, param's shape and dtype
    exp_avg, exp_avg_sq : ndarray, param's shape
        m and v, updated in place (zeros before the first step).
    step : int >= 1
        1 on the first call (the caller counts: torch's state["step"] after its increment).
    lr, eps, weight_decay : float >= 0
    beta1, beta2 : float in [0, 1)

    Returns
    -------
    param (the same array, updated).
    """
    return call("adam_step", param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay)


class Optimizer:
    """Base: `step(params, grads)` updates each params[key] in place from grads[key]; the state
    (buffers, step counts) is kept per key in `self.state` and created on a key's first step.

    Parameters
    ----------
    lr : float
        The learning rate (>= 0).
    """

    def __init__(self, lr):
        self.lr = real(type(self).__name__, "lr", lr, minimum=0.0)
        self.state = {}

    def step(self, params, grads):
        """Update every ``params[key]`` in place from ``grads[key]`` (fused kernels: the
        C-contiguous tensors of a dtype in one call, end to end; the others one call each).

        Parameters
        ----------
        params, grads : dict of str to ndarray
            The same keys; each gradient has its parameter's shape and dtype. A model's
            ``params``/``grads`` (fastnn.nn) fit as they are.

        Raises
        ------
        ValueError
            When the keys differ (naming the missing and extra ones); the step functions' own
            errors (e.g. `sgd_step`'s) for a gradient that does not match its parameter.
        """
        if set(params) != set(grads):
            raise ValueError(
                f"{type(self).__name__}.step: params and grads must have the same keys; "
                f"missing grads: {sorted(set(params) - set(grads))}, extra grads: {sorted(set(grads) - set(params))}"
            )
        checked = set()  # dtypes whose step passed the op's checks (the hyperparameters) this step
        batches = {}  # dtype -> (arrays, hyperparameters) of the plain tensors: one kernel call each
        batched = set()  # their ids: an array listed twice is stepped twice (its second time on its own, first)
        try:
            for key, param in params.items():
                state = self.state.get(key)
                if state is None:
                    state = self.state[key] = self._new_state(param)
                grad = grads[key]
                if param.dtype in checked and _plain(param, grad) and id(param) not in batched:
                    batched.add(id(param))
                    args, hyper = self._kernel_arguments(param, grad, state)
                    arrays, hypers = batches.setdefault(param.dtype, ([], []))
                    arrays.append(args)
                    hypers.append(hyper)
                else:
                    self._update(param, grad, state)
                    checked.add(param.dtype)
        finally:  # the tensors planned before an error are stepped all the same
            for dtype, (arrays, hypers) in batches.items():
                _ops.run_many(self._op, arrays, hypers, dtype)

    def _new_state(self, param):
        return {}

    def _update(self, param, grad, state):
        """The step of one tensor through the op's public function (every argument checked)."""
        args, hyper = self._kernel_arguments(param, grad, state)
        call(self._op, *args, *hyper)

    def _kernel_arguments(self, param, grad, state):
        """(arrays, hyperparameters) of `self._op` for this tensor, in the op's order (counts the
        step where the op has one)."""
        raise NotImplementedError


def _plain(param, grad):
    """The arrays the meta function would pass on unchanged, once the step's hyperparameters were
    checked: C-contiguous writable ndarrays, grad of param's shape and dtype. Optimizer.step then
    skips the per-tensor checks, a few microseconds per tensor that a model's 200 small tensors
    felt (bench "optim adam step 200x10k"). The state buffers are the optimizer's own
    (zeros_like a C-contiguous param)."""
    return (type(param) is np.ndarray and type(grad) is np.ndarray and grad.dtype == param.dtype
            and grad.shape == param.shape and param.flags.c_contiguous and param.flags.writeable
            and grad.flags.c_contiguous)


class SGD(Optimizer):
    """torch.optim.SGD (dampening 0): b = m*b + g (b = g on the first step);
    p -= lr * (g + m*b if nesterov else b); weight decay adds wd*p to g.

    Parameters
    ----------
    lr : float
        The learning rate.
    momentum : float, default 0
        b's decay; 0 is plain SGD.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0).
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    """

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = real("SGD", "momentum", momentum, minimum=0.0)
        self.weight_decay = real("SGD", "weight_decay", weight_decay, minimum=0.0)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov requires momentum > 0")
        self.nesterov = bool(nesterov)

    def _new_state(self, param):
        return {"momentum_buffer": np.zeros_like(param)} if self.momentum else {}

    _op = "sgd_step"

    def _kernel_arguments(self, param, grad, state):
        return (param, grad, state.get("momentum_buffer")), (self.lr, self.momentum, self.nesterov, self.weight_decay)


class AdaGrad(Optimizer):
    """torch.optim.Adagrad (no lr decay): s += g*g; p -= lr * g / (sqrt(s) + eps).

    Parameters
    ----------
    lr : float
        The learning rate.
    eps : float, default 1e-10
        Added to sqrt(s).
    """

    def __init__(self, lr, eps=1e-10):
        super().__init__(lr)
        self.eps = real("AdaGrad", "eps", eps, minimum=0.0)

    def _new_state(self, param):
        return {"sum": np.zeros_like(param)}

    _op = "adagrad_step"

    def _kernel_arguments(self, param, grad, state):
        return (param, grad, state["sum"]), (self.lr, self.eps)


class RMSProp(Optimizer):
    """torch.optim.RMSprop (no momentum, not centred): s = alpha*s + (1-alpha)*g*g;
    p -= lr * g / (sqrt(s) + eps).

    Parameters
    ----------
    lr : float
        The learning rate.
    alpha : float, default 0.99
        The decay of the squared-gradient average (in [0, 1]).
    eps : float, default 1e-8
        Added to sqrt(s).
    """

    def __init__(self, lr, alpha=0.99, eps=1e-8):
        super().__init__(lr)
        self.alpha = real("RMSProp", "alpha", alpha, minimum=0.0, maximum=1.0)
        self.eps = real("RMSProp", "eps", eps, minimum=0.0)

    def _new_state(self, param):
        return {"square_avg": np.zeros_like(param)}

    _op = "rmsprop_step"

    def _kernel_arguments(self, param, grad, state):
        return (param, grad, state["square_avg"]), (self.lr, self.alpha, self.eps)


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to g, bias-corrected, eps after the sqrt).

    Parameters
    ----------
    lr : float, default 1e-3
        The learning rate.
    betas : (float, float), default (0.9, 0.999)
        Decays of the first and second moment averages (each in [0, 1)).
    eps : float, default 1e-8
        Added to the square root of the second moment.
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        if len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_beta("Adam", "betas[0]", betas[0]), _beta("Adam", "betas[1]", betas[1]))
        self.eps = real("Adam", "eps", eps, minimum=0.0)
        self.weight_decay = real("Adam", "weight_decay", weight_decay, minimum=0.0)

    def _new_state(self, param):
        return {"step": 0, "exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}

    _op = "adam_step"

    def _kernel_arguments(self, param, grad, state):
        state["step"] += 1
        return ((param, grad, state["exp_avg"], state["exp_avg_sq"]),
                (state["step"], self.lr, self.betas[0], self.betas[1], self.eps, self.weight_decay))
