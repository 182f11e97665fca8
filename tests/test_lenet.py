"""LeNet5: structure, parameter counts, gradients (float64), save/load, input handling."""

import numpy as np
import pytest

from cnnlab.gradcheck import relative_error
from cnnlab.lenet import LeNet5


def _images(n, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(0, 1, (n, 28, 28)).astype(dtype)


# ------------------------------------------------------------------- structure


def test_classic_parameter_counts_and_shapes():
    model = LeNet5()
    shapes = {name: value.shape for name, value in model.params.items()}
    assert shapes == {
        "C1.w": (6, 1, 5, 5), "C1.b": (6,), "C3.w": (16, 6, 5, 5), "C3.b": (16,),
        "F5.w": (400, 120), "F5.b": (120,), "F6.w": (120, 84), "F6.b": (84,),
        "OUT.w": (84, 10), "OUT.b": (10,),
    }
    assert model.num_params == 61_706
    assert all(value.dtype == np.float32 for value in model.params.values())


def test_summary_lists_shapes_and_counts():
    text = LeNet5().summary()
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "6 x 28 x 28" in lines["C1"] and lines["C1"].endswith("156")
    assert "6 x 14 x 14" in lines["S2"]
    assert "16 x 10 x 10" in lines["C3"] and lines["C3"].endswith("2,416")
    assert "16 x 5 x 5" in lines["S4"]
    assert lines["F5"].endswith("48,120") and lines["F6"].endswith("10,164")
    assert lines["OUT"].endswith("850")
    assert lines["total"].endswith("61,706")


def test_lecture_variant():
    model = LeNet5.lecture_variant()
    assert model.params["C1.w"].shape == (20, 1, 5, 5)
    assert model.params["C3.w"].shape == (50, 20, 5, 5)
    assert model.params["F5.w"].shape == (800, 500)
    assert model.params["OUT.w"].shape == (500, 10)
    assert "F6.w" not in model.params
    assert model.num_params == 520 + 25_050 + 400_500 + 5_010
    summary = model.summary()
    assert "20 x 24 x 24" in summary and "50 x 4 x 4" in summary and "800->500" in summary
    assert model.forward(np.zeros((3, 28, 28), np.uint8)).shape == (3, 10)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = LeNet5(seed=3), LeNet5(seed=3), LeNet5(seed=4)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["C1.w"], c.params["C1.w"])
    assert all(not a.params[n].any() for n in a.params if n.endswith(".b"))


def test_initial_loss_is_close_to_log10():
    model = LeNet5(seed=0)
    loss, _ = model.loss(_images(64, dtype=np.float32), np.arange(64) % 10)
    assert abs(loss - np.log(10)) < 0.1


# -------------------------------------------------------------------- gradients


def _check_gradients(model, x, y, entries=None, seed=0, h=1e-5):
    """Compare model.loss's gradients with central differences (all or some entries)."""
    _, grads = model.loss(x, y)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for name, param in model.params.items():
        assert grads[name].shape == param.shape and grads[name].dtype == param.dtype
        flat = param.reshape(-1)
        picks = (range(flat.size) if entries is None or flat.size <= entries
                 else rng.choice(flat.size, entries, replace=False))
        analytic, numeric = [], []
        for i in picks:
            old = flat[i]
            flat[i] = old + h
            plus = model.loss(x, y)[0]
            flat[i] = old - h
            minus = model.loss(x, y)[0]
            flat[i] = old
            numeric.append((plus - minus) / (2 * h))
            analytic.append(grads[name].reshape(-1)[i])
        analytic, numeric = np.array(analytic), np.array(numeric)
        # Relative to the largest entry: entries of 1e-7 carry round-off of ~1e-11 / h.
        error = np.abs(analytic - numeric).max() / (np.abs(numeric).max() + 1e-12)
        assert error < 1e-6, f"{name}: relative error {error:.2e}"
        assert relative_error(analytic, numeric, eps=1e-4) < 1e-5, name
        worst = max(worst, error)
    return worst


@pytest.mark.parametrize("activation, pooling", [("relu", "max"), ("tanh", "avg"),
                                                 ("tanh", "max"), ("relu", "avg")])
def test_small_lenet_gradients_match_numerical(activation, pooling):
    model = LeNet5(activation=activation, pooling=pooling, channels=(2, 3), hidden=(5, 4),
                   input_size=28, seed=1, dtype=np.float64)
    for value in model.params.values():  # non-zero biases exercise their gradients too
        value += np.random.default_rng(5).normal(0, 0.05, value.shape)
    _check_gradients(model, _images(3, seed=2), np.array([1, 7, 3]))


def test_classic_lenet_gradients_match_numerical_on_sampled_entries():
    model = LeNet5(seed=2, dtype=np.float64)
    _check_gradients(model, _images(2, seed=3), np.array([4, 9]), entries=12)


def test_float32_gradients_agree_with_float64():
    x, y = _images(4, seed=4), np.array([0, 1, 2, 3])
    grads32 = LeNet5(seed=6).loss(x, y)[1]
    grads64 = LeNet5(seed=6, dtype=np.float64).loss(x, y)[1]
    for name in grads64:
        assert grads32[name].dtype == np.float32
        scale = np.abs(grads64[name]).max() + 1e-12
        assert np.abs(grads32[name] - grads64[name]).max() / scale < 1e-3, name


# ------------------------------------------------------------------------ inputs


def test_accepted_input_layouts_give_the_same_scores():
    model = LeNet5(seed=0, dtype=np.float64)
    pixels = np.random.default_rng(7).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    scaled = pixels / 255.0
    padded = np.pad(scaled, ((0, 0), (2, 2), (2, 2)))[:, None]
    reference = model.forward(pixels)
    np.testing.assert_allclose(model.forward(scaled), reference, rtol=1e-12)
    np.testing.assert_allclose(model.forward(scaled[:, None]), reference, rtol=1e-12)
    np.testing.assert_allclose(model.forward(padded), reference, rtol=1e-12)


def test_prepare_pads_with_background_and_standardizes():
    model = LeNet5()
    x = model.prepare(np.full((1, 28, 28), 255, dtype=np.uint8))
    assert x.shape == (1, 1, 32, 32) and x.dtype == np.float32
    background = (0 - 0.1307) / 0.3081
    assert x[0, 0, 0, 0] == pytest.approx(background, rel=1e-6)
    assert x[0, 0, 2, 2] == pytest.approx((1 - 0.1307) / 0.3081, rel=1e-6)


def test_predict_returns_int64_labels_in_batches():
    model = LeNet5(seed=0)
    x = _images(7, dtype=np.float32)
    labels = model.predict(x, batch_size=3)
    assert labels.dtype == np.int64 and labels.shape == (7,)
    np.testing.assert_array_equal(labels, np.argmax(model.forward(x), axis=1))


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "sigmoid"}, "activation must be 'relu' or 'tanh'"),
    ({"pooling": "min"}, "pooling must be 'max' or 'avg'"),
    ({"channels": (6,)}, "channels must have 2 entries"),
    ({"channels": (6, 0)}, "channels entries must be positive"),
    ({"hidden": ()}, "hidden must be a non-empty tuple"),
    ({"input_size": 29}, "input_size must be 28 or 28 plus an even padding"),
    ({"input_size": 24}, "input_size must be 28 or 28 plus an even padding"),
    ({"num_classes": 1}, "num_classes must be >= 2"),
    ({"dtype": np.int32}, "dtype must be numpy.float32 or numpy.float64"),
    ({"seed": -1}, "seed must be >= 0"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LeNet5(**kwargs)


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 3, 28, 28)), r"x must be a batch of 28x28 images.*got shape \(2, 3, 28, 28\)"),
    (np.zeros((2, 30, 30)), r"got shape \(2, 1, 30, 30\)"),
    (np.zeros((28, 28)), "x must be 3-D or 4-D"),
    (np.zeros((1, 28, 28), dtype=complex), "x must hold real pixel values"),
    (np.full((1, 28, 28), 255.0), r"must lie in \[0, 1\] .* got values from 255 to 255"),
])
def test_forward_rejects_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        LeNet5().forward(x)


def test_loss_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="x has 2 images, got 3 labels"):
        LeNet5().loss(np.zeros((2, 28, 28)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels in 0..9 .* got y\[1\]=10"):
        LeNet5().loss(np.zeros((2, 28, 28)), np.array([0, 10]))


# --------------------------------------------------------------------- save/load


def test_save_load_round_trip(tmp_path):
    model = LeNet5(activation="tanh", pooling="avg", channels=(4, 8), hidden=(30,), seed=9)
    for value in model.params.values():
        value += 0.01
    path = model.save(tmp_path / "model")
    assert path.name == "model.npz"
    loaded = LeNet5.load(path)
    assert loaded.config == model.config
    assert loaded.activation == "tanh" and loaded.pooling == "avg" and loaded.hidden == (30,)
    for name, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
        assert loaded.params[name].dtype == value.dtype
    x = _images(5, dtype=np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_save_uses_no_pickle(tmp_path):
    path = LeNet5().save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:  # would raise if an object were pickled
        assert "__config__" in archive.files and "C1.w" in archive.files


def test_load_rejects_foreign_and_inconsistent_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a LeNet5 file"):
        LeNet5.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        LeNet5.load(tmp_path / "junk.npz")
    path = LeNet5().save(tmp_path / "m.npz")
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["C1.w"] = np.zeros((7, 1, 5, 5), np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"C1.w has shape \(7, 1, 5, 5\)"):
        LeNet5.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="path must be a file path"):
        LeNet5.load(42)


def test_exercise_functions_check_their_model():
    from cnnlab.lenet import lenet_backward, lenet_forward

    with pytest.raises(ValueError, match="model must be a LeNet5, got dict"):
        lenet_forward({}, np.zeros((1, 28, 28)))
    with pytest.raises(ValueError, match="tape must be the list of"):
        lenet_backward(LeNet5(), np.zeros((1, 10)), {"C1": None})
    with pytest.raises(ValueError, match=r"tape must be the list of \(name, backward, cache\)"):
        lenet_backward(LeNet5(), np.zeros((1, 10)), [("C1", {})])  # (name, cache) pairs
