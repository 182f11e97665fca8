"""SGD arithmetic, learning-rate schedules, fit (determinism, learning), evaluation helpers."""

import math

import numpy as np
import pytest

from cnnlab.data import load_mnist
from cnnlab.lenet import LeNet5
from cnnlab.optim import SGD
from cnnlab.train import (
    History,
    confusion_matrix,
    evaluate,
    fit,
    grading_budget,
    learning_rate,
)

# ------------------------------------------------------------------------ SGD


def test_sgd_momentum_and_weight_decay_by_hand():
    w = np.array([[1.0, -2.0]])
    b = np.array([0.5])
    opt = SGD({"w": w, "b": b}, lr=0.1, momentum=0.9, weight_decay=0.01)
    g_w, g_b = np.array([[0.2, 0.4]]), np.array([1.0])
    # Step 1: v = g + λw; w -= lr v.  Biases: no decay.
    v_w = g_w + 0.01 * np.array([[1.0, -2.0]])
    expected_w = np.array([[1.0, -2.0]]) - 0.1 * v_w
    v_b = g_b.copy()
    expected_b = np.array([0.5]) - 0.1 * v_b
    opt.step({"w": g_w, "b": g_b})
    np.testing.assert_allclose(w, expected_w, rtol=1e-15)
    np.testing.assert_allclose(b, expected_b, rtol=1e-15)
    # Step 2: v = 0.9 v + g + λw.
    v_w = 0.9 * v_w + g_w + 0.01 * expected_w
    expected_w = expected_w - 0.1 * v_w
    v_b = 0.9 * v_b + g_b
    expected_b = expected_b - 0.1 * v_b
    opt.step({"w": g_w, "b": g_b})
    np.testing.assert_allclose(w, expected_w, rtol=1e-15)
    np.testing.assert_allclose(b, expected_b, rtol=1e-15)
    assert opt.steps == 2


def test_sgd_nesterov_by_hand():
    w = np.array([2.0])
    opt = SGD({"w": w}, lr=0.5, momentum=0.5, nesterov=True)
    opt.step({"w": np.array([1.0])})  # v = 1; w -= 0.5 * (1 + 0.5 * 1)
    assert w[0] == pytest.approx(2.0 - 0.75)
    opt.step({"w": np.array([1.0])})  # v = 1.5; w -= 0.5 * (1 + 0.75)
    assert w[0] == pytest.approx(1.25 - 0.875)


def test_sgd_plain_and_in_place_float32():
    w = np.ones(3, np.float32)
    opt = SGD({"w": w}, lr=0.25, momentum=0.0)
    opt.step({"w": np.full(3, 2.0)})
    np.testing.assert_array_equal(w, [0.5, 0.5, 0.5])
    assert w.dtype == np.float32
    opt.lr = 0.5  # a schedule changes the attribute between steps
    opt.step({"w": np.ones(3, np.float32)})
    np.testing.assert_array_equal(w, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("params, kwargs, match", [
    ({}, {}, "params must be a non-empty dict"),
    ({"w": [1.0]}, {}, r"params\['w'\] must be a floating-point numpy array .*, got list"),
    ({"w": np.ones(2, int)}, {}, "got an array of dtype int64"),
    ({"w": np.ones(2)}, {"lr": 0}, "lr must be > 0, got 0.0"),
    ({"w": np.ones(2)}, {"lr": float("nan")}, "lr must be a finite real number"),
    ({"w": np.ones(2)}, {"momentum": 1.0}, r"momentum must be >= 0 and < 1, got 1.0"),
    ({"w": np.ones(2)}, {"weight_decay": -1e-4}, "weight_decay must be >= 0"),
    ({"w": np.ones(2)}, {"momentum": 0.0, "nesterov": True}, "nesterov=True needs momentum"),
])
def test_sgd_rejects_bad_arguments(params, kwargs, match):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        SGD(params, **kwargs)


def test_sgd_read_only_params_and_bad_grads():
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="must be writable"):
        SGD({"w": frozen}, lr=0.1)
    opt = SGD({"w": np.ones(2)}, lr=0.1)
    with pytest.raises(ValueError, match=r"grads must be a dict with the parameters' keys \['w'\]"):
        opt.step({"v": np.ones(2)})
    with pytest.raises(ValueError, match=r"grads\['w'\] must have the shape .* \(2,\), got \(3,\)"):
        opt.step({"w": np.ones(3)})


# ------------------------------------------------------------------- schedules


def test_learning_rate_schedules():
    assert learning_rate(None, 0.1, 50, 100) == 0.1
    assert learning_rate("cosine", 0.1, 0, 100) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 50, 100) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 99, 100) == pytest.approx(
        0.05 * (1 + math.cos(math.pi * 0.99)))
    assert [learning_rate("step", 1.0, s, 100) for s in (0, 49, 50, 74, 75, 99)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="schedule must be 'cosine', 'step' or None"):
        learning_rate("linear", 0.1, 0, 10)


def test_grading_budget_follows_nbgrader_variable(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert grading_budget() is False
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert grading_budget() is True


# -------------------------------------------------------------------------- fit


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Train with one BLAS thread: small GEMMs gain nothing from a second one, and lose a
    lot when another process keeps the other core busy (as on shared CI machines)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def sample():
    return load_mnist("sample")


def _small(sample, n=256):
    return sample.x_train[:n], sample.y_train[:n]


def test_fit_is_deterministic(sample):
    runs = []
    for _ in range(2):
        model = LeNet5(seed=3)
        history = fit(model, _small(sample), epochs=2, batch_size=32, lr=0.05, seed=11,
                      eval_data=(sample.x_test[:200], sample.y_test[:200]), progress=False)
        runs.append((model, history))
    (m1, h1), (m2, h2) = runs
    assert h1.step_loss == h2.step_loss
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc
    assert h1.train_acc == h2.train_acc and h1.lr == h2.lr
    for name in m1.params:
        np.testing.assert_array_equal(m1.params[name], m2.params[name])
    other = fit(LeNet5(seed=3), _small(sample), epochs=2, batch_size=32, seed=12,
                eval_data=False, progress=False)
    assert other.step_loss != h1.step_loss


def test_fit_history_contents(sample):
    history = fit(LeNet5(seed=0), _small(sample, 200), epochs=3, batch_size=64, lr=0.02,
                  schedule="step", eval_data=(sample.x_test[:100], sample.y_test[:100]),
                  progress=False)
    assert isinstance(history, History)
    assert history.epoch == [1, 2, 3]
    assert len(history.step_loss) == 3 * 4  # ceil(200 / 64) steps per epoch
    assert history.lr == pytest.approx([0.02, 0.02, 0.002])
    assert all(0 <= a <= 1 for a in history.train_acc + history.test_acc)
    assert all(s > 0 for s in history.seconds) and all(r > 0 for r in history.images_per_second)
    assert history.final_test_acc == history.test_acc[-1]
    assert history.train_images_per_second > 0
    assert history.as_dict()["config"]["schedule"] == "step"


def test_fit_lowers_the_loss(sample):
    model = LeNet5(seed=0)
    history = fit(model, _small(sample, 512), epochs=20, batch_size=32, lr=0.03, seed=0,
                  eval_data=False, augment=False, progress=False, max_steps=300)
    losses = history.step_loss
    assert len(losses) == 300
    assert np.mean(losses[-30:]) < 0.25 * np.mean(losses[:30])
    assert evaluate(model, *_small(sample, 512)) > 0.9


def test_fit_with_mnist_object_evaluates_on_its_test_split(sample):
    calls = []
    history = fit(LeNet5(seed=0), sample, epochs=1, max_steps=2, progress=False,
                  callback=lambda h: calls.append(len(h.epoch)))
    assert calls == [1]
    assert history.config["eval_images"] == 1000 and history.test_acc[0] is not None


def test_fit_progress_bar(sample, capsys):
    fit(LeNet5(seed=0), _small(sample, 64), epochs=1, batch_size=32, progress=True,
        eval_data=(sample.x_test[:50], sample.y_test[:50]))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss" in err and "test" in err


class _Guesser:
    """A model that learns nothing and always scores class 0 highest."""

    def __init__(self, with_scores):
        self.params = {"w": np.zeros(2)}
        if with_scores:
            self.loss_and_scores = self._loss_and_scores

    def _loss_and_scores(self, x, y):
        scores = np.zeros((len(y), 10))
        scores[:, 0] = 1.0
        return 1.5, {"w": np.zeros(2)}, scores

    def loss(self, x, y):
        return self._loss_and_scores(x, y)[:2]

    def predict(self, x, batch_size=1000):
        return np.zeros(len(x), dtype=np.int64)


def test_fit_counts_training_accuracy_from_the_models_scores():
    y = np.array([0, 0, 0, 1, 2, 3, 4, 5])  # 3 of 8 are class 0
    data = (np.zeros((8, 28, 28), dtype=np.uint8), y)
    history = fit(_Guesser(with_scores=True), data, epochs=2, batch_size=3, eval_data=data,
                  progress=False)
    assert history.train_acc == [3 / 8, 3 / 8] and history.test_acc == [3 / 8, 3 / 8]
    assert history.step_loss == [1.5] * 6
    without = fit(_Guesser(with_scores=False), data, epochs=2, batch_size=3, eval_data=data,
                  progress=False)
    assert without.train_acc == [None, None] and without.test_acc == [3 / 8, 3 / 8]


def test_lenet_loss_and_scores_agree_with_loss_and_forward(sample):
    model = LeNet5(seed=2, dtype=np.float64)
    x, y = _small(sample, 5)
    loss, grads, scores = model.loss_and_scores(x, y)
    np.testing.assert_array_equal(scores, model.forward(x))
    plain_loss, plain_grads = model.loss(x, y)
    assert loss == plain_loss and grads.keys() == plain_grads.keys()
    for name in grads:
        np.testing.assert_array_equal(grads[name], plain_grads[name])
    assert not hasattr(model, "last_scores")


@pytest.mark.parametrize("kwargs, match", [
    ({"data": (np.zeros((3, 28, 28)), np.zeros(2, int))}, "3 images but 2 labels"),
    ({"data": (np.zeros((3, 28, 28)), np.zeros(3))}, "data labels must be integers"),
    ({"data": np.zeros((3, 28, 28))}, "data must be an MNIST object"),
    ({"schedule": "linear"}, "schedule must be 'cosine', 'step' or None"),
    ({"epochs": 0}, "epochs must be positive"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"augment": "yes"}, "augment must be True or False"),
    ({"eval_data": np.zeros(3)}, "eval_data must be a pair"),
    ({"lr": -1.0}, "lr must be > 0"),
])
def test_fit_rejects_bad_arguments(kwargs, match):
    arguments = {"data": (np.zeros((4, 28, 28)), np.zeros(4, int)), "progress": False}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit(LeNet5(), **arguments)


def test_history_plot(sample):
    history = fit(LeNet5(seed=0), _small(sample, 64), epochs=2, batch_size=32,
                  eval_data=(sample.x_test[:50], sample.y_test[:50]), progress=False)
    figure = history.plot()
    assert len(figure.axes) == 2
    assert figure.axes[1].get_ylabel() == "accuracy (%)"


# ---------------------------------------------------------------- evaluation


class _Fixed:
    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def predict(self, x, batch_size=1000):
        return self.labels[: len(x)]


def test_evaluate_counts_right_answers():
    assert evaluate(_Fixed([0, 1, 2, 3]), np.zeros((4, 28, 28)), np.array([0, 1, 0, 3])) == 0.75
    with pytest.raises(ValueError, match="x has 4 images, got 3 labels"):
        evaluate(_Fixed([0, 1, 2, 3]), np.zeros((4, 28, 28)), np.array([0, 1, 0]))


def test_confusion_matrix():
    m = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=4)
    np.testing.assert_array_equal(m, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    assert m.sum() == 6 and m.dtype == np.int64
    with pytest.raises(ValueError, match="labels must be below num_classes=2, got 2"):
        confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="y_pred must hold integer labels"):
        confusion_matrix([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="y_true must hold labels >= 0"):
        confusion_matrix([-1, 1], [0, 1])


def test_sgd_update_rejects_bad_arguments():
    from cnnlab.optim import sgd_update

    w, v = np.ones(2), np.zeros(2)
    with pytest.raises(ValueError, match=r"grad and velocity must have param's shape \(2,\)"):
        sgd_update(w, np.ones(3), v, lr=0.1)
    with pytest.raises(ValueError, match="velocity must be a floating-point numpy array"):
        sgd_update(w, np.ones(2), [0.0, 0.0], lr=0.1)
    with pytest.raises(ValueError, match="momentum must be >= 0 and < 1"):
        sgd_update(w, np.ones(2), v, lr=0.1, momentum=1.5)
