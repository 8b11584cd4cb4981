"""Layers: gradient checks of small float64 Sequentials (numerical vs backward for the input and
every parameter), naming, buffer reuse, train/eval, init defaults, training with an optimizer."""
import math

import numpy as np
import pytest

import fastnn
from conftest import COMPILED
from fastnn import nn, optim
from fastnn.gradcheck import numerical_gradient, rel_error

F64 = dict(dtype=np.float64)
# No bias right before a BatchNorm: its gradient is zero in theory and rounding noise in practice.


# Tiny layers: one thread avoids waking a thread pool for microsecond kernels (hundreds of calls).
pytestmark = pytest.mark.usefixtures("one_thread")


def _convnet(seed=0):
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=False, seed=seed, **F64), nn.BatchNorm2d(3, **F64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(3, 4, (2, 3), stride=(1, 2), seed=seed + 1, **F64),
        nn.PReLU(4, **F64), nn.AvgPool2d(2, stride=1), nn.Flatten(),
        nn.Linear(4, 6, seed=seed + 2, **F64), nn.Tanh(), nn.Linear(6, 3, seed=seed + 3, **F64),
    )


def _mlp(seed=0):
    return nn.Sequential(
        nn.Linear(5, 8, bias=False, seed=seed, **F64), nn.BatchNorm1d(8, **F64), nn.LeakyReLU(0.1),
        nn.Linear(8, 8, seed=seed + 1, **F64), nn.ELU(0.7),
        nn.Linear(8, 8, seed=seed + 2, **F64), nn.GELU(), nn.Linear(8, 8, seed=seed + 3, **F64), nn.SiLU(),
        nn.Linear(8, 8, seed=seed + 4, **F64), nn.Sigmoid(), nn.Linear(8, 8, seed=seed + 5, **F64),
        nn.Maxout(2), nn.PReLU(**F64), nn.Linear(4, 3, seed=seed + 6, **F64),
    )


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("build, shape", [(_convnet, (3, 2, 6, 11)), (_mlp, (4, 5))], ids=["convnet", "mlp"])
def test_sequential_gradients_match_numerical(build, shape, backend):
    missing = fastnn.missing_kernels().get(backend, [])
    if missing:
        pytest.skip(f"the {backend} backend misses {missing}")
    with fastnn.use_backend(backend):
        _check_sequential_gradients(build(), shape)


def _check_sequential_gradients(model, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy).copy()
    grads = {k: v.copy() for k, v in model.grads.items()}
    assert set(grads) == set(model.params)

    def loss_of(_):
        return model.forward(x).copy()  # a copy: the output buffer is reused by the next call

    assert rel_error(dx, numerical_gradient(loss_of, x, df=dy)) < 1e-6
    for name, param in model.params.items():
        err = rel_error(grads[name], numerical_gradient(loss_of, param, df=dy))
        assert err < 1e-6, (name, err)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("first", [lambda: nn.Conv2d(2, 4, 3, padding=1, seed=5, **F64),
                                   lambda: nn.Linear(2 * 6 * 11, 4, seed=5, **F64), lambda: nn.ReLU(),
                                   lambda: nn.BatchNorm2d(2, **F64), lambda: nn.PReLU(2, **F64),
                                   lambda: nn.MaxPool2d(1), lambda: nn.Flatten(), lambda: nn.Maxout(2)],
                         ids=["conv", "linear", "relu", "batchnorm", "prelu", "maxpool", "flatten", "maxout"])
def test_input_grad_false_skips_dx_and_keeps_every_parameter_gradient(first, backend):
    """backward(dy, input_grad=False) returns None and leaves the same gradients as backward(dy)."""
    layer = first()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 11))
    if isinstance(layer, nn.Linear):
        x = x.reshape(3, -1)
    features = math.prod(layer.forward(x).shape[1:])
    head = nn.Linear(features, 3, seed=6, **F64)
    model = nn.Sequential(layer, nn.Flatten(), head)
    with fastnn.use_backend(backend):
        dy = rng.standard_normal(model.forward(x).shape)
        dx = model.backward(dy)
        expected = {k: v.copy() for k, v in model.grads.items()}
        model.forward(x)
        assert model.backward(dy, input_grad=False) is None
        assert layer.backward(dy=np.ones(layer.forward(x).shape), input_grad=False) is None
        model.forward(x)
        model.backward(dy, input_grad=False)
    assert dx is not None and dx.shape == x.shape
    assert set(model.grads) == set(expected)
    for name, grad in model.grads.items():
        np.testing.assert_allclose(grad, expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_sequential_names_and_opt_step_updates_layers_in_place():
    model = nn.Sequential(nn.Linear(4, 3, seed=0), nn.ReLU(), nn.Linear(3, 2, bias=False, seed=1))
    assert list(model.params) == ["0.weight", "0.bias", "2.weight"]
    assert model.params["0.weight"] is model[0].params["weight"]
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    model.forward(x)
    model.backward(np.ones((5, 2), np.float32))
    assert list(model.grads) == ["0.weight", "0.bias", "2.weight"]
    assert model.grads["2.weight"] is model[2].grads["weight"]
    before = model[2].params["weight"].copy()
    optim.SGD(lr=0.1).step(model.params, model.grads)
    np.testing.assert_allclose(model[2].params["weight"], before - 0.1 * model[2].grads["weight"], rtol=1e-6)


def test_backward_overwrites_grads():
    layer = nn.Linear(3, 2, seed=0)
    x = np.ones((4, 3), np.float32)
    layer.forward(x)
    layer.backward(np.ones((4, 2), np.float32))
    first = layer.grads["bias"].copy()
    layer.forward(x)
    layer.backward(np.ones((4, 2), np.float32))
    np.testing.assert_array_equal(layer.grads["bias"], first)  # not accumulated
    np.testing.assert_array_equal(first, [4, 4])


def test_output_buffers_are_reused_for_the_same_input_shape():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0), nn.ReLU(), nn.MaxPool2d(2))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    y1 = model.forward(x)
    expected = y1.copy()
    pool_dx = model[2].backward(np.ones_like(y1))
    relu_dx = model[1].backward(pool_dx)
    y2 = model.forward(x)
    assert y2 is y1 and model[2].backward(np.ones_like(y2)) is pool_dx and model[1].backward(pool_dx) is relu_dx
    np.testing.assert_array_equal(y2, expected)
    y3 = model.forward(rng.standard_normal((3, 1, 8, 8)).astype(np.float32))
    assert y3 is not y1 and y3.shape == (3, 2, 3, 3)


def test_batchnorm_train_updates_running_stats_and_eval_uses_them():
    bn = nn.BatchNorm1d(3, momentum=0.1, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((50, 3)) * 2 + 5
    y = bn.forward(x).copy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)
    bn.eval()
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps)
    np.testing.assert_allclose(bn.forward(x), expected, rtol=1e-12)
    assert not bn.training and nn.Sequential(bn).train() and bn.training


def test_layer_defaults_follow_pytorch_constructors_and_he_init():
    lin = nn.Linear(400, 300, seed=0)
    assert lin.params["weight"].shape == (400, 300) and lin.params["weight"].dtype == np.float32
    assert abs(lin.params["weight"].std() / math.sqrt(2 / 400) - 1) < 0.02
    np.testing.assert_array_equal(lin.params["bias"], 0)
    conv = nn.Conv2d(16, 32, 3, groups=2, bias=False, seed=0)
    assert conv.params["weight"].shape == (32, 8, 3, 3) and "bias" not in conv.params
    assert abs(conv.params["weight"].std() / math.sqrt(2 / 72) - 1) < 0.05
    assert abs(nn.Linear(400, 300, init=0.01, seed=0).params["weight"].std() / 0.01 - 1) < 0.02
    assert nn.Linear(4, 3, init="xavier_uniform", seed=0).params["weight"].max() <= math.sqrt(6 / 7)
    np.testing.assert_array_equal(nn.Linear(5, 5, seed=3).params["weight"], nn.Linear(5, 5, seed=3).params["weight"])
    bn = nn.BatchNorm2d(4, dtype=np.float64)
    assert bn.params["weight"].dtype == np.float64 and list(bn.params) == ["weight", "bias"]
    assert nn.MaxPool2d(3).stride == (3, 3) and nn.PReLU().params["weight"].shape == ()


@pytest.mark.parametrize("layer, torch_layer", [
    (lambda: nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), "MaxPool2d(3, 2, 1, 2, ceil_mode=True)"),
    (lambda: nn.MaxPool2d(2, ceil_mode=True), "MaxPool2d(2, ceil_mode=True)"),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     "AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)"),
    (lambda: nn.AvgPool2d(2, divisor_override=3), "AvgPool2d(2, divisor_override=3)"),
])
def test_pool_layer_options_as_torch(layer, torch_layer):
    """The pooling layers take torch's options and give torch's output and input gradient."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    ours = layer()
    y = ours.forward(x)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx = ours.backward(dy)
    xt = torch.from_numpy(x).requires_grad_()
    yt = eval("torch.nn." + torch_layer)(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert "ceil_mode" in repr(ours) or "divisor_override=3" in repr(ours)


def test_constructor_errors():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="init"):
        nn.Linear(3, 4, init="orthogonal")
    with pytest.raises(TypeError, match="layer 1"):
        nn.Sequential(nn.ReLU(), np.tanh)
    with pytest.raises(ValueError, match="BatchNorm2d: x must be 4-d"):
        nn.BatchNorm2d(3).forward(np.zeros((2, 3), np.float32))


def test_training_a_small_model_drives_the_loss_down():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 10)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(10, 16, seed=0), nn.ReLU(), nn.Linear(16, 2, seed=1))
    opt = optim.Adam(lr=0.01)
    losses = []
    for _ in range(100):
        loss, dscores = fastnn.softmax_cross_entropy(model.forward(x), labels)
        model.backward(dscores)
        opt.step(model.params, model.grads)
        losses.append(loss)
    assert losses[-1] < 0.2 * losses[0]


def test_residual_block_gradients_and_keys():
    """ResNet's basic block from fastnn.nn: gradients of x and of every parameter against centred
    differences (float64), parameter keys, and train/eval reaching the body."""
    from fastnn.gradcheck import numerical_gradient, rel_error

    c = 3
    body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False, dtype=np.float64, seed=0),
                         nn.BatchNorm2d(c, dtype=np.float64), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1, bias=False, dtype=np.float64, seed=1),
                         nn.BatchNorm2d(c, dtype=np.float64))
    block = nn.Residual(body, nn.ReLU())
    assert sorted(block.params) == ["body.0.weight", "body.1.bias", "body.1.weight", "body.3.weight",
                                    "body.4.bias", "body.4.weight"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, c, 4, 5)) + 0.3
    dy = rng.standard_normal(x.shape)
    block.forward(x)
    dx = block.backward(dy)
    grads = {k: v.copy() for k, v in block.grads.items()}
    loss = lambda: float((block.forward(x) * dy).sum())  # noqa: E731
    assert rel_error(numerical_gradient(lambda xx: float((block.forward(xx) * dy).sum()), x.copy()), dx) < 1e-6
    for key, param in block.params.items():
        assert rel_error(numerical_gradient(lambda p: loss(), param), grads[key]) < 1e-6, key
    block.eval()
    assert not body[1].training and not body[4].training
    with pytest.raises(ValueError, match="Residual: body maps x of shape"):
        nn.Residual(nn.Conv2d(c, 2 * c, 1, dtype=np.float64)).forward(x)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_runs_batchnorm_then_relu_as_one_pass(backend, dtype):
    """Sequential's BatchNorm -> ReLU runs batch_norm_relu: the output, dx, the parameters' gradients
    and the running statistics of the same layers run one by one, in training and in eval, also with
    the model's layers driven backward one by one; other activations after a BatchNorm are not
    fused."""
    def build():
        return [nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(), nn.Conv2d(4, 4, 1, seed=0, dtype=dtype),
                nn.BatchNorm2d(4, dtype=dtype), nn.LeakyReLU(0.1)]
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 5, 5)) + 0.2).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    model, layers = nn.Sequential(*build()), build()
    with fastnn.use_backend(backend):
        for training in (True, False):
            model.train() if training else model.eval()
            for layer in layers:
                layer.train() if training else layer.eval()
            y = model.forward(x)
            assert model._fused == {1}
            expected = x
            for layer in layers:
                expected = layer.forward(expected)
            dx, expected_dx = model.backward(dy), dy
            for layer in reversed(layers):
                expected_dx = layer.backward(expected_dx)
            tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(y, expected, **tol)
            np.testing.assert_allclose(dx, expected_dx, **tol)
            driven = dy  # the layers' own backwards one by one after the fused forward (DataParallel's way)
            for layer in reversed(model.layers):
                driven = layer.backward(driven)
            np.testing.assert_allclose(driven, expected_dx, **tol)
            for key, grad in model.grads.items():
                i, name = key.split(".")
                np.testing.assert_allclose(grad, layers[int(i)].grads[name], **tol, err_msg=key)
            for key, buf in model.buffers.items():
                i, name = key.split(".")
                np.testing.assert_allclose(buf, layers[int(i)].buffers[name], **tol, err_msg=key)


@pytest.mark.parametrize("momentum", [0.3, None], ids=["momentum=0.3", "momentum=None"])
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (6, 4, 5)),
                                        ("BatchNorm2d", (6, 4, 3, 2)), ("BatchNorm3d", (3, 4, 2, 3, 2))])
def test_batchnorm_layers_track_statistics_as_torch(cls, shape, momentum):
    """num_batches_tracked and the running statistics step by step as torch.nn's (momentum None: the
    cumulative average), forward and backward in training and eval."""
    torch = pytest.importorskip("torch")
    ours = getattr(nn, cls)(4, momentum=momentum, dtype=np.float64)
    theirs = getattr(torch.nn, cls)(4, momentum=momentum).double()
    rng = np.random.default_rng(0)
    for step in range(4):
        x = rng.standard_normal(shape) * (step + 1) + step
        dy = rng.standard_normal(shape)
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(ours.forward(x), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ours.grads["weight"], theirs.weight.grad.numpy(), rtol=1e-9, atol=1e-11)
        theirs.zero_grad()
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == step + 1
        assert ours.buffers["num_batches_tracked"] is ours.num_batches_tracked
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours.forward(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert int(ours.num_batches_tracked) == 4  # eval counts nothing


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")  # torch's own
def test_conv2d_layer_takes_padding_strings():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    for padding, kernel, dilation in (("same", (4, 3), 1), ("same", 3, (2, 3)), ("valid", 3, 1)):
        layer = nn.Conv2d(3, 5, kernel, padding=padding, dilation=dilation, seed=0, **F64)
        assert repr(layer).endswith(f"padding={padding!r})")
        w, b = layer.params["weight"], layer.params["bias"]
        y = layer.forward(x)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, torch.tensor(w), torch.tensor(b), padding=padding, dilation=dilation)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="Conv2d: padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv2d: padding must be"):
        nn.Conv2d(3, 4, 3, padding="full")


def test_gelu_layer_tanh_form():
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    layer = nn.GELU(approximate="tanh")
    np.testing.assert_array_equal(layer.forward(x), fastnn.gelu(x, approximate="tanh"))
    np.testing.assert_array_equal(layer.backward(dy), fastnn.gelu_backward(dy, x, approximate="tanh"))
    assert repr(layer) == "GELU(approximate='tanh')" and repr(nn.GELU()) == "GELU(approximate='none')"
