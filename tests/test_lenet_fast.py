"""FastLeNet5: the readable LeNet5's loss, scores and gradients, by its fast training step."""

import os
import signal
import threading
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import cnnlab.lenet_fast as lenet_fast
from cnnlab.lenet import LeNet5
from cnnlab.lenet_fast import SLICE, FastLeNet5
from cnnlab.optim import SGD


def _pair(kind="classic", seed=3, dtype=np.float32, **kwargs):
    """A readable LeNet5 and a FastLeNet5 with the same weights and nonzero biases."""
    if kind == "lecture":
        ref, fast = (cls.lecture_variant(seed=seed, dtype=dtype, **kwargs)
                     for cls in (LeNet5, FastLeNet5))
    else:
        ref, fast = (cls(seed=seed, dtype=dtype, **kwargs) for cls in (LeNet5, FastLeNet5))
    rng = np.random.default_rng(seed)
    for name, value in ref.params.items():
        np.testing.assert_array_equal(fast.params[name], value)  # same seed, same weights
        if name.endswith(".b"):
            value[...] = rng.normal(0, 0.1, value.shape)
            fast.params[name][...] = value
    return ref, fast


def _batch(n, seed=0, blank_rows=6):
    """uint8 digits-like images: random pixels under ``blank_rows`` rows of 0s, where
    every pooling window ties (equal convolution outputs) as in MNIST's background."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    x[:, :blank_rows] = 0
    return x, rng.integers(0, 10, n)


def _assert_same_step(ref, fast, x, y, threads, rtol=1e-5):
    loss, grads, scores = ref.loss_and_scores(x, y)
    with threadpool_limits(limits=threads):
        fast_loss, fast_grads, fast_scores = fast.loss_and_scores(x, y)
    assert fast_loss == pytest.approx(loss, rel=rtol)
    assert fast_scores.shape == scores.shape and fast_scores.dtype == scores.dtype
    np.testing.assert_allclose(fast_scores, scores, rtol=rtol, atol=rtol * np.abs(scores).max())
    assert sorted(fast_grads) == sorted(grads)
    for name, grad in grads.items():
        assert fast_grads[name].shape == grad.shape and fast_grads[name].dtype == grad.dtype
        np.testing.assert_allclose(fast_grads[name], grad, rtol=rtol,
                                   atol=rtol * np.abs(grad).max(), err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("n", [1, 37, SLICE, 100, 2 * SLICE + 2])
def test_same_loss_scores_and_gradients_as_the_readable_step(activation, n, threads):
    ref, fast = _pair(activation=activation)
    _assert_same_step(ref, fast, *_batch(n, seed=n), threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind, kwargs", [
    ("lecture", {}), ("lecture", {"activation": "tanh"}),
    ("classic", {"pooling": "avg"}), ("classic", {"pooling": "avg", "activation": "tanh"}),
    ("classic", {"input_size": 30}),  # odd 13x13 maps: pooling drops a row and a column
    ("classic", {"channels": (4, 8), "hidden": (32,), "num_classes": 3}),
], ids=["lecture", "lecture-tanh", "avg", "avg-tanh", "odd-maps", "small"])
def test_other_configurations(kind, kwargs, threads):
    ref, fast = _pair(kind, **kwargs)
    x, y = _batch(70, seed=1)
    _assert_same_step(ref, fast, x, y % ref.num_classes, threads)


def test_float64_agrees_to_rounding():
    ref, fast = _pair(dtype=np.float64)
    _assert_same_step(ref, fast, *_batch(80, seed=2), threads=1, rtol=1e-10)


@pytest.mark.parametrize("threads", [1, 2])
def test_pooling_ties_go_to_the_first_maximum(threads):
    """Blank images: every 2x2 window of C1 (and most of C3) holds 4 equal values; the
    gradient goes to the first of them, as max_pool2d_backward sends it."""
    ref, fast = _pair(seed=5)
    n = 2 * SLICE + 9  # two threads share the batch from two slices on
    x = np.zeros((n, 28, 28), np.uint8)
    x[4::2, 10:20, 10:20] = 255  # some images with a square: ties around it, not on it
    y = np.arange(n) % 10
    _assert_same_step(ref, fast, x, y, threads)


def test_float_and_prepared_inputs_match_uint8():
    _, fast = _pair()
    x, y = _batch(20)
    loss, grads, _ = fast.loss_and_scores(x, y)
    padded = np.pad(x[:, None] / 255.0, ((0, 0), (0, 0), (2, 2), (2, 2)))  # (N, 1, 32, 32)
    for same in (x / 255.0, x[:, None], padded):
        other_loss, other_grads, _ = fast.loss_and_scores(same, y)
        assert other_loss == pytest.approx(loss, rel=1e-6)
        for name, grad in grads.items():
            np.testing.assert_allclose(other_grads[name], grad, rtol=1e-5,
                                       atol=1e-6 * np.abs(grad).max())


def test_two_threads_use_two_threads_and_restore_blas(monkeypatch):
    if not any(info["user_api"] == "blas" for info in threadpool_info()):  # pragma: no cover
        pytest.skip("no BLAS library that threadpoolctl controls")
    seen = []
    original = FastLeNet5._run

    def spy(self, *args):
        seen.append((threading.current_thread().name, lenet_fast._Blas.threads()))
        return original(self, *args)

    monkeypatch.setattr(FastLeNet5, "_run", spy)
    _, fast = _pair()
    x, y = _batch(3 * SLICE)
    with threadpool_limits(limits=2, user_api="blas"):
        fast.loss_and_scores(x, y)
        assert lenet_fast._Blas.threads() == 2  # restored after the step
    assert len({name for name, _ in seen}) == 2 and {t for _, t in seen} == {1}
    seen.clear()
    with threadpool_limits(limits=1, user_api="blas"):
        fast.loss_and_scores(x, y)
    assert len(seen) == 1
    seen.clear()
    with threadpool_limits(limits=2, user_api="blas"):  # one slice: one Python thread
        fast.loss_and_scores(x[:SLICE], y[:SLICE])
    assert seen == [(threading.current_thread().name, 2)]


def test_grads_are_new_arrays_and_training_follows_the_readable_model():
    ref, fast = _pair(seed=7)
    optimizers = [SGD(m.params, lr=0.05, momentum=0.9, weight_decay=5e-4) for m in (ref, fast)]
    x, y = _batch(96, seed=7)
    kept = []
    for step in range(4):
        batch = slice(24 * step, 24 * step + 24)
        for model, optimizer in zip((ref, fast), optimizers):
            _, grads = model.loss(x[batch], y[batch])
            optimizer.step(grads)
            if model is fast:
                kept.append(grads)
    assert kept[0]["C1.w"] is not kept[1]["C1.w"]
    assert not np.array_equal(kept[0]["C1.w"], kept[1]["C1.w"])
    for name, value in ref.params.items():
        np.testing.assert_allclose(fast.params[name], value, rtol=1e-4,
                                   atol=1e-5 * np.abs(value).max(), err_msg=name)


def test_is_a_lenet5_that_saves_and_loads(tmp_path):
    fast = FastLeNet5(seed=2, activation="tanh")
    assert isinstance(fast, LeNet5) and repr(fast).startswith("FastLeNet5(")
    path = fast.save(tmp_path / "fast")
    loaded = FastLeNet5.load(path)
    assert type(loaded) is FastLeNet5 and loaded.config == fast.config
    x, _ = _batch(5)
    np.testing.assert_array_equal(LeNet5.load(path).predict(x), fast.predict(x))


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((3, 28, 28), np.uint8), np.array([0, 1]),
     r"y must hold one label per image: x has 3 images, got 2 labels"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0.0, 1.0]),
     r"y must be an array of integer class labels, got dtype float64"),
    (np.zeros((2, 28, 28), np.uint8), np.array([0, 10]),
     r"y must hold class labels in 0\.\.9, got y\[1\]=10"),
    (np.zeros((2, 28, 28), np.uint8), np.array([[0, 1]]), r"y must be 1-D"),
    (np.zeros((2, 20, 20), np.uint8), np.array([0, 1]), r"x must be a batch of 28x28 images"),
    (np.full((2, 28, 28), 3.0), np.array([0, 1]),
     r"x: pixels that are not uint8 must lie in \[0, 1\]"),
    (np.zeros((2, 28)), np.array([0, 1]), r"x must be 3-D or 4-D"),
])
def test_bad_input_is_refused_clearly(x, y, message):
    with pytest.raises(ValueError, match=message):
        FastLeNet5().loss_and_scores(x, y)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_plain_order_where_pooling_first_would_not_be_valid(monkeypatch, activation):
    """For an activation that is not monotone, max pooling must follow it: the plain
    order (pretending ReLU and tanh are not monotone) gives the readable step's results."""
    monkeypatch.setattr(lenet_fast, "MONOTONE", frozenset())
    ref, fast = _pair(activation=activation)
    assert not fast._pool_first
    _assert_same_step(ref, fast, *_batch(70, seed=4), threads=1)


def test_a_forked_child_still_runs_two_thread_steps():
    """The shared worker thread does not survive os.fork(): the child must make its own
    rather than queue work that no thread will run (it would wait forever)."""
    if not any(info["user_api"] == "blas" for info in threadpool_info()):  # pragma: no cover
        pytest.skip("no BLAS library that threadpoolctl controls")
    _, fast = _pair()
    x, y = _batch(2 * SLICE)
    with threadpool_limits(limits=2, user_api="blas"):
        fast.loss_and_scores(x, y)  # starts the worker thread in this process
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: a hang ends with SIGALRM
            signal.alarm(30)
            code = 1
            try:
                loss, _, _ = fast.loss_and_scores(x, y)
                code = 0 if np.isfinite(loss) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the child ended with status {status}"
