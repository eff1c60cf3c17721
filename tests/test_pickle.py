"""Pickling (issue 21): every public object of convforge.nn and convforge.models crosses a process boundary.

A round trip for every class exported by ``convforge.nn`` (and ``nn.init``) and every model builder
exported by ``convforge.models``: the walk over the exports fails for a class that has no example
here, so a new layer cannot be missed. Copies are compared attribute by attribute (their whole
``__dict__``, recursively), then run: outputs, input gradients and parameter gradients equal bit
for bit. Also: LeNet-5 forward passes in a spawn-method pool equal the serial ones; an optimiser
pickled mid-training continues bit for bit like one that was not; student kernels re-load from
their cached build; device arrays travel as host copies (the GPU half skips without a GPU).
"""
import copy
import inspect
import math
import multiprocessing
import pickle
import types
from pathlib import Path

import numpy as np
import pytest

from convforge import cuda, kernels, models, nn, train
from convforge.nn import init
from convforge.nn._arrays import to_host
from conftest import randn

HERE = Path(__file__).parent
POOL_TIMEOUT_S = 240  # spawn workers import numpy and convforge; a hang fails instead of blocking CI


def roundtrip(obj, protocol=pickle.HIGHEST_PROTOCOL):
    return pickle.loads(pickle.dumps(obj, protocol=protocol))


def assert_same(a, b, where="obj", seen=None):
    """a and b are equal copies: same types, and equal state all the way down (the whole __dict__)."""
    seen = set() if seen is None else seen
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a is not b, f"{where}: the copy shares the array"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=True), f"{where}: values differ"
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, f"{where}: generator state differs"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]", seen)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]", seen)
    elif isinstance(a, (types.FunctionType, types.BuiltinFunctionType, type)):
        assert a is b, f"{where}: {a!r} is not {b!r}"
    elif hasattr(a, "__dict__") and not isinstance(a, (int, float, str, bool)):
        if id(a) in seen:
            return
        seen.add(id(a))
        assert a is not b, f"{where}: the copy shares the {type(a).__name__}"
        assert_same(vars(a), vars(b), where, seen)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def host(a):
    return np.array(to_host(a), copy=True)


def run(layer, x, dy=None):
    """Output, input gradient and parameter gradients (host copies) of one forward and backward."""
    layer.zero_grad()
    y = host(layer(x))
    dy = randn(np.random.default_rng(y.size), *y.shape) if dy is None else dy
    gx = layer.backward(dy)
    grads = [host(p.grad) for p in layer.parameters()]
    return y, (None if gx is None else host(gx)), grads


def assert_runs_equal(a, b, rtol=0.0):
    """Equal outputs and gradients: bit for bit (rtol 0), or within rtol (GPU atomics)."""
    def same(u, v):
        return np.array_equal(u, v) if rtol == 0 else np.allclose(u, v, rtol=rtol, atol=0)

    ya, gxa, ga = a
    yb, gxb, gb = b
    assert same(ya, yb) and np.all(np.isfinite(ya))
    assert (gxa is None) == (gxb is None)
    if gxa is not None:
        assert same(gxa, gxb)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        assert same(x, y) and np.all(np.isfinite(x))


# ---------------------------------------------------------------------------------------------
# The walk over convforge.nn's exports
# ---------------------------------------------------------------------------------------------

# Every class exported by convforge.nn or defined in convforge.nn.init: examples (constructor,
# input shape or None for objects that are not layers). A new class fails test_every_class_has_an_example
# until it has a row here. Rows for classes not exported (yet) are unused.
NN_EXAMPLES = {
    "Conv2d": [(lambda: nn.Conv2d(3, 6, 3, stride=2, padding=1), (2, 3, 9, 8)),
               (lambda: nn.Conv2d(4, 6, (3, 2), padding=(2, 1), dilation=(1, 2), groups=2, bias=False), (1, 4, 7, 9))],
    "Linear": [(lambda: nn.Linear(7, 5), (3, 7)), (lambda: nn.Linear(4, 2, bias=False), (1, 4))],
    "MaxPool2d": [(lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 9, 8))],
    "AvgPool2d": [(lambda: nn.AvgPool2d((2, 3), 2, padding=1, count_include_pad=False), (2, 3, 9, 8))],
    "ReLU": [(nn.ReLU, (2, 3, 4, 5))],
    "Tanh": [(nn.Tanh, (2, 3, 4, 5))],
    "Sigmoid": [(nn.Sigmoid, (2, 3, 4, 5))],
    "Flatten": [(nn.Flatten, (2, 3, 4, 5))],
    "Dropout": [(lambda: nn.Dropout(0.3), (2, 3, 4, 5))],
    "Sequential": [(lambda: nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                                          nn.Linear(4 * 5 * 5, 3)), (2, 2, 7, 7))],
    "Module": [(nn.Module, None)],
    # issue 16's layers, torch's signatures
    "BatchNorm2d": [(lambda: nn.BatchNorm2d(3), (4, 3, 5, 5))],
    "AdaptiveAvgPool2d": [(lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 7))],
    # not layers: their own tests below run them
    "Parameter": [(lambda: nn.Parameter(shape=(3, 4), init=init.torch_default_weight), None)],
    "CrossEntropyLoss": [(nn.CrossEntropyLoss, None)],
    "Optimizer": [(lambda: nn.Optimizer([nn.Parameter(np.ones((2, 2), np.float32))], lr=0.1), None)],
    "SGD": [(lambda: nn.SGD(nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9, nesterov=True), None)],
    "Adam": [(lambda: nn.Adam(nn.Linear(3, 2).parameters(), lr=0.1, weight_decay=0.01), None)],
    "Uniform": [(lambda: init.Uniform(-0.5, 0.25), None)],
}


def _nn_classes():
    exported = {n: getattr(nn, n) for n in nn.__all__ if inspect.isclass(getattr(nn, n))}
    exported.update({n: c for n, c in vars(init).items()
                     if inspect.isclass(c) and c.__module__ == init.__name__ and not n.startswith("_")})
    return exported


def _nn_cases():
    return [pytest.param(name, i, id=f"{name}-{i}") for name in sorted(_nn_classes())
            for i in range(len(NN_EXAMPLES.get(name, [None])))]


def test_every_class_has_an_example():
    missing = sorted(set(_nn_classes()) - set(NN_EXAMPLES))
    assert not missing, f"add examples of {missing} to NN_EXAMPLES in tests/test_pickle.py"
    # the walk found the layers, the containers, the optimisers and the initialiser classes
    assert {"Conv2d", "Sequential", "Module", "Parameter", "SGD", "Adam", "CrossEntropyLoss", "Uniform"} <= set(_nn_classes())


@pytest.mark.parametrize("name,i", _nn_cases())
def test_nn_class_round_trip(name, i):
    make, shape = NN_EXAMPLES[name][i]
    nn.manual_seed(11)
    obj = make()
    assert isinstance(obj, _nn_classes()[name])
    clone = roundtrip(obj)  # nothing materialised yet: the copy carries seeds and initialisers
    assert_same(obj, clone)
    if type(obj).__repr__ is not object.__repr__:
        assert repr(clone) == repr(obj)
    if shape is None:
        return
    x = randn(np.random.default_rng(len(shape)), *shape)
    first = run(obj, x)
    assert_runs_equal(first, run(clone, x))  # same lazily created weights, dropout masks
    # mid-use: data, gradients, caches and generator states travel
    again = roundtrip(obj)
    assert_same(obj, again)
    dy = randn(np.random.default_rng(1), *first[0].shape)
    assert_runs_equal(run(obj, x, dy), run(again, x, dy))
    # and the mode
    obj.eval()
    evaled = roundtrip(obj)
    assert all(not m.training for m in evaled.modules())
    assert_runs_equal(run(obj, x, dy), run(evaled, x, dy))


def test_parameter_keeps_data_gradient_and_initialiser(rng):
    nn.manual_seed(2)
    lazy = nn.Parameter(shape=(5, 3, 2, 2), init=init.torch_default_bias(12))
    assert isinstance(lazy._init, init.Uniform) and lazy._init == init.Uniform(-1 / math.sqrt(12), 1 / math.sqrt(12))
    copied = roundtrip(lazy)
    assert not copied.materialized and copied._init == lazy._init and copied._seed == lazy._seed
    assert np.array_equal(copied.data, lazy.data)  # the same values, materialised on each side
    lazy.accumulate_grad(randn(rng, 5, 3, 2, 2))
    full = roundtrip(lazy)
    assert full.materialized and full.shape == lazy.shape and full.device == "cpu"
    assert np.array_equal(full.data, lazy.data) and np.array_equal(full.grad, lazy.grad)
    assert full.data.flags.c_contiguous and full.data.dtype == np.float32
    # a picklable user initialiser: a module-level function or a partial of one
    import functools

    p = nn.Parameter(shape=(4, 6), init=functools.partial(init.kaiming_normal, nonlinearity="relu"))
    assert np.array_equal(roundtrip(p).data, p.data)


def test_loss_round_trip_with_and_without_a_pending_backward(rng):
    crit = nn.CrossEntropyLoss()
    assert repr(roundtrip(crit)) == "CrossEntropyLoss()"
    logits, labels = randn(rng, 6, 10), rng.integers(0, 10, 6)
    loss = crit(logits, labels)
    clone = roundtrip(crit)
    assert clone(logits, labels) == loss
    assert np.array_equal(roundtrip(crit).backward(0.5), crit.backward(0.5))


def test_every_pickle_protocol_and_deepcopy():
    nn.manual_seed(4)
    model = models.lenet5()
    for copier in [*(lambda m, p=p: roundtrip(m, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)), copy.deepcopy]:
        assert_same(model, copier(model))
    x = randn(np.random.default_rng(0), 2, 1, 32, 32)
    model(x)
    for copier in [*(lambda m, p=p: roundtrip(m, p) for p in range(pickle.HIGHEST_PROTOCOL + 1)), copy.deepcopy]:
        assert_same(model, copier(model))


# ---------------------------------------------------------------------------------------------
# The walk over convforge.models' exports
# ---------------------------------------------------------------------------------------------

# Builders: small configurations. Rows for builders not exported (yet) are unused.
MODEL_EXAMPLES = {
    "lenet5": [dict(), dict(activation="relu", pooling="avg", num_classes=7, in_channels=3, input_size=28)],
    "alexnet": [dict(num_classes=10, input_size=64)],
    "vgg16": [dict(num_classes=10, input_size=32)],
    "vgg": [dict(cfg=(8, "M", 16, 16, "M"), num_classes=10, input_size=16, hidden=32, dropout=0.25)],
    "vgg16_bn": [dict(num_classes=10, input_size=32)],
    "vgg11": [dict(num_classes=10, input_size=32)],
    "vgg13": [dict(num_classes=10, input_size=32)],
    "vgg19": [dict(num_classes=10, input_size=32)],
    "vgg11_bn": [dict(num_classes=10, input_size=32)],
    "vgg13_bn": [dict(num_classes=10, input_size=32)],
    "vgg19_bn": [dict(num_classes=10, input_size=32)],
}
NOT_MODELS = {"build", "names", "VGG16_CFG", "CFGS"}  # functions and constants, not objects with state
# Above this, a model is compared without materialising its weights (AlexNet, VGG-16: seconds on 2 cores);
# their layers and containers are the ones run in full above and in the small configurations here.
FULL_RUN_PARAMS = 5_000_000


def _model_builders():
    names = set(models.names()) | {n for n in models.__all__ if callable(getattr(models, n))}
    return sorted(names - NOT_MODELS - {"Network"})


def test_every_model_builder_has_an_example():
    missing = sorted(set(_model_builders()) - set(MODEL_EXAMPLES))
    assert not missing, f"add configurations of {missing} to MODEL_EXAMPLES in tests/test_pickle.py"
    assert {"lenet5", "alexnet", "vgg16"} <= set(_model_builders())
    others = [n for n in models.__all__ if n not in _model_builders()]
    assert set(others) <= NOT_MODELS | {"Network"}, f"classify {set(others) - NOT_MODELS} in tests/test_pickle.py"


@pytest.mark.parametrize("name,i", [pytest.param(n, i, id=f"{n}-{i}") for n in _model_builders()
                                    for i in range(len(MODEL_EXAMPLES.get(n, [None])))])
def test_model_round_trip(name, i):
    config = MODEL_EXAMPLES[name][i]
    nn.manual_seed(21)
    model = getattr(models, name)(**config)
    assert isinstance(model, models.Network)
    clone = roundtrip(model)
    assert_same(model, clone)
    assert (clone.arch, clone.config, clone.input_shape) == (model.arch, model.config, model.input_shape)
    assert repr(clone) == repr(model)
    assert models.build(clone.arch, **clone.config).num_parameters() == clone.num_parameters()
    if model.num_parameters() > FULL_RUN_PARAMS:
        # the weights are functions of (initialiser, seed, shape), all compared above; check the smallest one
        small = min(zip(model.parameters(), clone.parameters()), key=lambda pc: pc[0].numel)
        assert np.array_equal(small[0].data, small[1].data)
        return
    x = randn(np.random.default_rng(3), 2, *model.input_shape)
    model.train()
    first = run(model, x)
    assert_runs_equal(first, run(clone, x))
    trained = roundtrip(model)  # materialised, with gradients
    assert_same(model, trained)
    dy = randn(np.random.default_rng(4), *first[0].shape)
    assert_runs_equal(run(model, x, dy), run(trained, x, dy))


def test_network_class_round_trip():
    """Network built directly, not by a builder."""
    net = models.Network({"conv": nn.Conv2d(1, 2, 3), "flat": nn.Flatten(), "fc": nn.Linear(2 * 4 * 4, 3)},
                         arch="tiny", config={"k": 3}, input_shape=(1, 6, 6))
    clone = roundtrip(net)
    assert_same(net, clone)
    x = randn(np.random.default_rng(0), 2, 1, 6, 6)
    assert_runs_equal(run(net, x), run(clone, x))


# ---------------------------------------------------------------------------------------------
# Optimisers pickled mid-training
# ---------------------------------------------------------------------------------------------

def _dropout_net():
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))


@pytest.mark.parametrize("make_model", [models.lenet5, _dropout_net], ids=["lenet5", "dropout_net"])
@pytest.mark.parametrize("make_opt", [
    lambda ps: nn.SGD(ps, lr=0.05),
    lambda ps: nn.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: nn.SGD(ps, lr=0.05, momentum=0.8, dampening=0.1),
    lambda ps: nn.Adam(ps, lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-3),
], ids=["sgd", "sgd_nesterov", "sgd_dampening", "adam"])
def test_optimiser_pickled_mid_training_continues_bit_for_bit(make_model, make_opt):
    rng = np.random.default_rng(7)
    batches = [(randn(rng, 8, 1, 32, 32), rng.integers(0, 10, 8)) for _ in range(6)]
    nn.manual_seed(8)
    model = make_model()
    opt, crit = make_opt(model.parameters()), nn.CrossEntropyLoss()
    for x, y in batches[:3]:
        train.train_step(model, crit, opt, x, y)
    blob = pickle.dumps((model, opt, crit))
    m2, o2, c2 = pickle.loads(blob)
    # the optimiser still drives the copied model's own parameters
    assert all(a is b for a, b in zip(o2.params, m2.parameters()))
    assert_same(opt.state, o2.state)
    if isinstance(opt, nn.Adam) or opt.momentum:
        assert all(o2.state) and all(st is not s2 for st, s2 in zip(opt.state, o2.state))
    losses, losses2 = [], []
    for x, y in batches[3:]:
        losses.append(train.train_step(model, crit, opt, x, y)[0])
        losses2.append(train.train_step(m2, c2, o2, x, y)[0])
    assert losses == losses2
    for (n, a), b in zip(model.named_parameters(), m2.parameters()):
        assert np.array_equal(a.data, b.data), n
    assert_same(opt.state, o2.state)
    # and against the optimiser's state_dict route
    assert_same(opt.state_dict(), o2.state_dict())


# ---------------------------------------------------------------------------------------------
# Across processes
# ---------------------------------------------------------------------------------------------

def test_spawn_pool_runs_lenet5_forward_passes_like_serial():
    rng = np.random.default_rng(9)
    nn.manual_seed(10)
    nets = [models.lenet5(), models.lenet5(activation="relu", pooling="avg"), models.lenet5(activation="sigmoid")]
    nets[0](randn(rng, 3, 1, 32, 32))  # one materialised, with forward caches; the others lazy
    xs = [randn(rng, 5, 1, 32, 32) for _ in nets]
    jobs = [(m, x) for m in nets for x in xs]
    assert [m[0].weight.materialized for m in nets] == [True, False, False]
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # the lazy ones materialise in the workers
        got = pool.starmap_async(models.Network.forward, jobs).get(timeout=POOL_TIMEOUT_S)
    serial = [np.array(m.forward(x)) for m, x in jobs]
    assert len(got) == len(serial)
    for g, s in zip(got, serial):
        assert isinstance(g, np.ndarray) and np.array_equal(g, s)


# ---------------------------------------------------------------------------------------------
# Student kernels
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def student_conv(kernel_cache):
    import convforge

    k = convforge.load_kernel(HERE / "student_kernels" / "good_conv.cpp", name="pickled_conv")
    yield k
    kernels.unload_kernel("pickled_conv")


def test_student_kernel_round_trip_reloads_its_cached_build(student_conv, tmp_path):
    import convforge

    k = student_conv
    assert roundtrip(k) is k  # registered here under that name: the same kernel
    blob = pickle.dumps(k)
    kernels.unload_kernel(k.name)  # as in a fresh process
    k2 = pickle.loads(blob)
    assert k2 is not k and kernels.student_kernels()[k.name] is k2
    assert (k2.name, k2.op, k2.path, k2.device, k2.library) == (k.name, k.op, k.path, k.device, k.library)
    assert k2.provides == k.provides
    # a process with another kernel under that name: refuse rather than replace it silently
    kernels.unload_kernel(k.name)
    gemm = convforge.load_kernel(HERE / "student_kernels" / "good_gemm.cpp", op="gemm", name=k.name)
    blob = pickle.dumps(gemm)
    kernels.unload_kernel(k.name)
    convforge.load_kernel(k.path, name=k.name)
    with pytest.raises(RuntimeError, match="different kernel registered under that name.*unload_kernel"):
        pickle.loads(blob)
    assert kernels.student_kernels()[k.name].op == "conv2d"
    # a build that does not exist where it is unpickled: say to load it there
    moved = tmp_path / "moved.so"
    moved.write_bytes(Path(k.library).read_bytes())
    unregistered = kernels.open_kernel(k.path, name="moved_conv", library=str(moved))
    blob = pickle.dumps(unregistered)
    moved.unlink()
    with pytest.raises(RuntimeError, match=r"build .*moved.so does not exist.*load it here first with "
                                           r"convforge.load_kernel\("):
        pickle.loads(blob)
    assert "moved_conv" not in kernels.student_kernels()


def test_layers_using_a_student_kernel_take_it_along(student_conv):
    nn.manual_seed(12)
    model = models.lenet5()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.algo = student_conv.name
    x = randn(np.random.default_rng(5), 3, 1, 32, 32)
    blob = pickle.dumps(model)
    kernels.unload_kernel(student_conv.name)  # as in a fresh process: unpickling registers it again
    clone = pickle.loads(blob)
    assert kernels.student_kernels()[student_conv.name].library == student_conv.library
    assert "__student_kernel__" not in vars(clone[0])
    assert_runs_equal(run(model, x), run(clone, x))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply_async(models.Network.forward, (model, x)).get(timeout=POOL_TIMEOUT_S)
    assert np.array_equal(got, host(model.forward(x)))


# ---------------------------------------------------------------------------------------------
# Device arrays
# ---------------------------------------------------------------------------------------------

def test_device_array_unpickled_where_the_device_is_missing_says_so():
    with pytest.raises(RuntimeError, match=r"cannot unpickle a DeviceArray of shape \(2, 3\) \(float32\) on cuda:\d+: "
                                           r".*move it to the host before pickling"):
        cuda._rebuild_device_array(np.zeros((2, 3), np.float32), cuda.device_count())


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU visible")
def test_device_arrays_and_cuda_models_pickle_through_the_host():
    host = randn(np.random.default_rng(6), 3, 4, 5)
    a = cuda.to_device(host)
    for b in (roundtrip(a), copy.deepcopy(a), roundtrip(cuda.to_device(np.arange(6, dtype=np.int64)))):
        assert isinstance(b, cuda.DeviceArray) and b.device == "cuda:0"
    b = roundtrip(a)
    assert b.data_ptr != a.data_ptr and b.dtype == np.float32 and np.array_equal(b.numpy(), host)
    nn.manual_seed(13)
    model = models.lenet5().to("cuda")
    x = randn(np.random.default_rng(7), 2, 1, 32, 32)
    xd = cuda.to_device(x)
    first = run(model, xd, cuda.to_device(randn(np.random.default_rng(8), 2, 10)))
    clone = roundtrip(model)
    assert clone.device == "cuda:0" and all(p.device == "cuda:0" for p in clone.parameters())
    dy = cuda.to_device(randn(np.random.default_rng(8), 2, 10))
    assert_runs_equal(run(model, xd, dy), run(clone, xd, dy), rtol=1e-5)
    assert np.all(np.isfinite(first[0]))


# ---------------------------------------------------------------------------------------------
# The data that goes with a model to a worker
# ---------------------------------------------------------------------------------------------

def test_dataset_and_batch_iterator_round_trip(rng):
    from convforge import data

    ds = data.Dataset(randn(rng, 10, 1, 32, 32), rng.integers(0, 10, 10), randn(rng, 4, 1, 32, 32),
                      rng.integers(0, 10, 4), name="toy", mean=0.5, std=2.0, notes=["generated"])
    assert_same(ds, roundtrip(ds))
    it = data.BatchIterator(ds.x_train, ds.y_train, 4, seed=3)
    list(it)  # one epoch done: the copy goes on with the second epoch's permutation
    clone = roundtrip(it)
    for (xa, ya), (xb, yb) in zip(it, clone, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
