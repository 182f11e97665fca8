"""The small modern CNN of notebook 05: its gradients, its modes, and training with fit."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.gradcheck import numerical_gradient, relative_error
from cnnlab.layers import softmax_cross_entropy
from cnnlab.modern_cnn import ModernCNN
from cnnlab.train import fit

RNG = np.random.default_rng(5)


def test_parameters_are_counted_as_the_docstring_says():
    model = ModernCNN()
    blocks = 16 * 9 + 32 + 32 * 16 * 9 + 64 + 64 * 32 * 9 + 128
    assert model.num_params == blocks + 64 * 64 + 128 + 64 * 10 + 10
    assert ModernCNN(mix=0).num_params == blocks + 64 * 10 + 10
    assert "B1.b" not in model.params and set(model.running) == {
        f"{name}.{s}" for name in ("B1", "B2", "B3", "mix") for s in ("mean", "var")}


@pytest.mark.parametrize("name", ["B1.w", "B2.gamma", "B3.beta", "B3.w", "head.w", "head.b"])
def test_gradients_match_central_differences(name):
    model = ModernCNN(channels=(3, 4, 5), mix=0, dropout=0.0, dtype=np.float64, seed=1)
    x = RNG.integers(0, 256, size=(4, 28, 28)).astype(np.uint8)
    y = np.array([0, 3, 9, 3])
    _, grads = model.loss(x, y)

    def loss():
        saved = {k: v.copy() for k, v in model.running.items()}
        scores = model.forward_pass(x, mode="train")[0]
        for k, v in saved.items():  # the train-mode forward moves the running statistics
            model.running[k][...] = v
        return np.array(softmax_cross_entropy(scores, y)[0])

    assert relative_error(grads[name], numerical_gradient(loss, model.params[name])) < 1e-5


def test_train_mode_updates_the_running_statistics_and_eval_mode_does_not():
    model = ModernCNN(channels=(2,), mix=0, seed=0)
    x = RNG.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    model.predict(x)
    assert np.array_equal(model.running["B1.mean"], np.zeros(2))
    model.loss(x, np.array([1, 2, 3]))
    assert not np.array_equal(model.running["B1.mean"], np.zeros(2))


def test_dropout_only_in_train_mode():
    model = ModernCNN(channels=(2, 3), dropout=0.5, seed=0)
    x = RNG.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    assert np.array_equal(model.forward(x), model.forward(x))
    kinds = [kind for kind, _, _ in model.forward_pass(x, mode="train")[1]]
    assert "dropout" in kinds


def test_fit_trains_it_like_lenet5():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, size=(40, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 2, size=40)
    x[y == 1, 7:21, 7:21] = 255  # class 1 has a bright square
    model = ModernCNN(channels=(4, 8), num_classes=2, mix=0, dropout=0.0, seed=0)
    history = fit(model, (x, y), epochs=10, batch_size=10, lr=0.1, augment=False,
                  eval_data=(x, y), progress=False)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.final_test_acc >= 0.9 and history.train_acc[-1] is not None


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": ()}, r"channels must be a non-empty tuple of positive ints"),
    ({"channels": (8, 0)}, r"channels must be a non-empty tuple of positive ints"),
    ({"channels": (2, 2, 2, 2)}, r"channels must have at most 3 blocks"),
    ({"num_classes": 1}, r"num_classes must be >= 2"),
    ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\)"),
    ({"dtype": np.int32}, r"dtype must be numpy.float32 or numpy.float64"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModernCNN(**kwargs)


def test_bad_inputs_are_refused():
    model = ModernCNN(channels=(2,))
    with pytest.raises(ValueError, match=r"x must be a batch of 28x28 images"):
        model.forward(np.zeros((2, 32, 32)))
    with pytest.raises(ValueError, match=r"mode must be 'train' or 'eval'"):
        model.forward_pass(np.zeros((2, 28, 28)), mode="test")
    with pytest.raises(ValueError, match=r"y must hold one label per image"):
        model.loss(np.zeros((2, 28, 28)), np.array([1]))


def test_the_mixing_layer_has_its_gradients_right():
    model = ModernCNN(channels=(3,), mix=4, dropout=0.0, dtype=np.float64, seed=2)
    x = RNG.integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    y = np.array([1, 0, 2])
    _, grads = model.loss(x, y)
    assert model.params["mix.w"].shape == (4, 3, 1, 1) and "mix.b" not in model.params

    def loss():
        saved = {k: v.copy() for k, v in model.running.items()}
        scores = model.forward_pass(x, mode="train")[0]
        for k, v in saved.items():
            model.running[k][...] = v
        return np.array(softmax_cross_entropy(scores, y)[0])

    for name in ("mix.w", "mix.gamma", "B1.w"):
        assert relative_error(grads[name], numerical_gradient(loss, model.params[name])) < 1e-5
