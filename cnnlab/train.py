"""Training loop: mini-batch SGD with a learning-rate schedule, augmentation and evaluation.

:func:`fit` trains any model with ``params`` (a dict of arrays), ``loss(x, y)``
returning ``(loss, grads)`` and ``predict(x)`` — such as :class:`cnnlab.lenet.LeNet5`
— and returns a :class:`History` of the run. Everything random (the order of the
examples, the shifts of the augmentation) comes from one
``numpy.random.Generator`` seeded with ``seed``: the same seed gives the same
numbers.

Under nbgrader, :func:`grading_budget` is True, so that notebooks can train
for less time while they are being graded.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cnnlab._validate import as_numeric_array, check_int
from cnnlab.data import MNIST, random_shift
from cnnlab.optim import SGD
from cnnlab.progress import progress_bar, progress_enabled

__all__ = [
    "History",
    "SCHEDULES",
    "confusion_matrix",
    "evaluate",
    "fit",
    "grading_budget",
    "learning_rate",
]

SCHEDULES = ("cosine", "step", None)
STEP_MILESTONES = (0.5, 0.75)  # the 'step' schedule divides the rate by 10 at these fractions


def grading_budget() -> bool:
    """True while nbgrader executes the notebook (it sets ``NBGRADER_EXECUTION``).

    Notebooks use it to train for a few steps instead of a few minutes when graded.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def learning_rate(schedule, base_lr, step, total_steps) -> float:
    """Learning rate at step ``step`` (0-based) of ``total_steps``.

    * ``None``: constant ``base_lr``;
    * ``'cosine'``: ``base_lr * (1 + cos(pi * step / total_steps)) / 2``, from
      ``base_lr`` down to nearly 0 at the last step;
    * ``'step'``: ``base_lr``, divided by 10 after half and again after three
      quarters of the steps.

    Examples
    --------
    >>> [round(learning_rate("cosine", 0.1, s, 4), 4) for s in range(4)]
    [0.1, 0.0854, 0.05, 0.0146]
    >>> [round(learning_rate("step", 1.0, s, 8), 4) for s in (0, 3, 4, 6, 7)]
    [1.0, 1.0, 0.1, 0.01, 0.01]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'cosine', 'step' or None, got {schedule!r}")
    total_steps = check_int(total_steps, "total_steps", minimum=1)
    step = check_int(step, "step", minimum=0)
    if schedule is None:
        return float(base_lr)
    fraction = min(step / total_steps, 1.0)
    if schedule == "cosine":
        return float(base_lr) * 0.5 * (1.0 + math.cos(math.pi * fraction))
    passed = sum(fraction >= milestone for milestone in STEP_MILESTONES)
    return float(base_lr) / 10 ** passed


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (and one per step for ``step_loss``).

    Attributes
    ----------
    epoch : list of int
        Epoch numbers, from 1.
    train_loss : list of float
        Mean training loss over the epoch's batches.
    train_acc : list of float or None
        Fraction of the epoch's training batches classified right, as they were
        seen (augmented, with the weights of that moment); None if the model has no
        ``loss_and_scores(x, y)`` method (see :func:`loss_and_scores`).
    test_acc : list of float or None
        Accuracy on ``eval_data`` after the epoch (None without ``eval_data``).
    lr : list of float
        Learning rate at the start of the epoch.
    seconds : list of float
        Training time of the epoch (without the evaluation).
    images_per_second : list of float
        Training images processed per second during the epoch.
    step_loss : list of float
        The loss of every step.
    config : dict
        The arguments of the run.
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    images_per_second: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def final_test_acc(self):
        """Test accuracy after the last epoch (None if not evaluated)."""
        return self.test_acc[-1] if self.test_acc else None

    @property
    def train_seconds(self) -> float:
        """Total training time (evaluations excluded)."""
        return float(sum(self.seconds))

    @property
    def train_images_per_second(self) -> float:
        """Training images per second over the whole run."""
        images = sum(s * r for s, r in zip(self.seconds, self.images_per_second))
        return images / self.train_seconds if self.train_seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """The history as plain lists and numbers (JSON-serializable)."""
        return asdict(self)

    def plot(self, figure=None):
        """Plot the learning curves: loss per step and epoch, accuracies per epoch.

        Parameters
        ----------
        figure : matplotlib.figure.Figure, optional
            Where to draw; a new 10x4-inch figure by default (made without pyplot,
            so it works with any backend and can be saved with ``savefig``).

        Returns
        -------
        matplotlib.figure.Figure
        """
        if figure is None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=(10, 4), layout="constrained")
        left, right = figure.subplots(1, 2)
        if self.step_loss:
            steps_per_epoch = len(self.step_loss) / max(len(self.epoch), 1)
            x = (np.arange(len(self.step_loss)) + 1) / steps_per_epoch
            left.plot(x, self.step_loss, color="0.75", linewidth=0.6, label="batch loss")
        left.plot(self.epoch, self.train_loss, "o-", label="epoch mean")
        left.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log",
                 title="training loss")
        left.legend()
        if any(a is not None for a in self.train_acc):
            right.plot(self.epoch, [100 * a for a in self.train_acc], "o-", label="train")
        if any(a is not None for a in self.test_acc):
            right.plot(self.epoch, [100 * a for a in self.test_acc], "s-", label="test")
        right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        right.grid(alpha=0.3)
        right.legend()
        return figure


def evaluate(model, x, y, batch_size=1000) -> float:
    """Accuracy of ``model.predict`` on images ``x`` with labels ``y``, a float in [0, 1].

    Raises
    ------
    ValueError
        If ``y`` is not a 1-D array with one label per image, or ``batch_size`` is
        not a positive int.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    y = as_numeric_array(y, "y", ndim=1)
    if np.shape(x)[0] != y.shape[0]:
        raise ValueError(f"y must hold one label per image: x has {np.shape(x)[0]} images, "
                         f"got {y.shape[0]} labels")
    predicted = model.predict(x, batch_size=batch_size)
    return float(np.mean(predicted == y))


def confusion_matrix(y_true, y_pred, num_classes=None) -> np.ndarray:
    """Count of every (true class, predicted class) pair.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (N,)
        True and predicted labels, in ``0 .. num_classes - 1``.
    num_classes : int, optional
        Size of the matrix (default: 1 + the largest label).

    Returns
    -------
    ndarray of int64, shape (num_classes, num_classes)
        ``m[i, j]`` = number of examples of class ``i`` predicted as ``j``: the
        diagonal holds the right answers.

    Raises
    ------
    ValueError
        If the inputs are not 1-D integer arrays of the same length with labels
        in range.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    y_true = as_numeric_array(y_true, "y_true", ndim=1)
    y_pred = as_numeric_array(y_pred, "y_pred", ndim=1)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}")
        if labels.min() < 0:
            raise ValueError(f"{name} must hold labels >= 0, got {int(labels.min())}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.shape[0]} "
                         f"and {y_pred.shape[0]}")
    largest = int(max(y_true.max(), y_pred.max()))
    if num_classes is None:
        num_classes = largest + 1
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    if largest >= num_classes:
        raise ValueError(f"labels must be below num_classes={num_classes}, got {largest}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _split_data(data, eval_data):
    """Return ``(x_train, y_train), (x_eval, y_eval) or None`` from fit's arguments."""
    if isinstance(data, MNIST):
        train = data.train
        if eval_data is None:
            eval_data = data.test
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        train = tuple(data)
    else:
        raise ValueError("data must be an MNIST object (from cnnlab.data.load_mnist) or a pair "
                         f"(x_train, y_train), got {type(data).__name__}")
    if eval_data is False:
        eval_data = None
    if eval_data is not None and not (isinstance(eval_data, (tuple, list))
                                      and len(eval_data) == 2):
        raise ValueError(f"eval_data must be a pair (x, y), None or False, got "
                         f"{type(eval_data).__name__}")
    checked = []
    for name, pair in (("data", train), ("eval_data", eval_data)):
        if pair is None:
            checked.append(None)
            continue
        x = as_numeric_array(pair[0], f"{name} images", ndim=(3, 4))
        y = as_numeric_array(pair[1], f"{name} labels", ndim=1)
        if y.dtype.kind not in "iu":
            raise ValueError(f"{name} labels must be integers, got dtype {y.dtype}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} images but {y.shape[0]} labels; the counts "
                             "must match")
        checked.append((x, y))
    return checked[0], checked[1]


def fit(model, data, epochs=30, batch_size=64, lr=0.05, momentum=0.9, schedule="cosine",
        weight_decay=5e-4, augment=True, max_shift=2, seed=0, progress=None,
        eval_data=None, max_steps=None, nesterov=False, callback=None) -> History:
    """Train ``model`` with mini-batch SGD; evaluate after every epoch.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of arrays, updated in place), ``loss(x, y) -> (loss,
        grads)`` and ``predict(x, batch_size)``, e.g. :class:`cnnlab.lenet.LeNet5`;
        with ``loss_and_scores(x, y) -> (loss, grads, scores)`` as well, the training
        accuracy is counted too.
    data : MNIST or (x_train, y_train)
        Training images (e.g. uint8 ``(N, 28, 28)``) and int labels. An ``MNIST``
        from :func:`cnnlab.data.load_mnist` also gives the default ``eval_data``
        (its test split).
    epochs : int, optional
        Passes over the training set.
    batch_size : int, optional
        Images per step (the last batch of an epoch may be smaller).
    lr : float, optional
        Initial learning rate.
    momentum, weight_decay, nesterov : optional
        Passed to :class:`cnnlab.optim.SGD` (no decay of biases).
    schedule : {'cosine', 'step', None}, optional
        How the learning rate changes from step to step (:func:`learning_rate`).
    augment : bool, optional
        Shift each training image by up to ``max_shift`` pixels in each direction
        (:func:`cnnlab.data.random_shift`), drawn anew every time it is seen.
    max_shift : int, optional
        Largest shift of the augmentation.
    seed : int, optional
        Seed of the generator that shuffles the data and draws the shifts.
    progress : bool, optional
        Show a tqdm progress bar per epoch with the running loss and accuracy.
        None: only when stderr is a terminal or inside Jupyter.
    eval_data : (x, y), None or False, optional
        Evaluated after every epoch; False: no evaluation.
    max_steps : int, optional
        Stop after this many steps in all (the schedule is compressed to fit).
    callback : callable, optional
        Called as ``callback(history)`` after every epoch.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        If an argument is invalid.
    """
    (x_train, y_train), evaluation = _split_data(data, eval_data)
    epochs, batch_size, seed, max_shift, max_steps = _checked_options(
        epochs, batch_size, seed, max_shift, schedule, augment, max_steps, callback)
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
        epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer = SGD(model.params, lr, momentum=momentum, weight_decay=weight_decay,
                    nesterov=nesterov)
    run = _Run(model=model, optimizer=optimizer, x=x_train, y=y_train, lr=lr,
               schedule=schedule, total_steps=total_steps, augment=augment,
               max_shift=max_shift, rng=np.random.default_rng(seed))
    history = History(config={
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
        "schedule": schedule, "weight_decay": weight_decay, "augment": augment,
        "max_shift": max_shift, "seed": seed, "max_steps": max_steps, "nesterov": nesterov,
        "train_images": n, "eval_images": None if evaluation is None else len(evaluation[1]),
    })
    show = progress_enabled(progress)
    for epoch in range(1, epochs + 1):
        order = run.rng.permutation(n)
        steps = min(steps_per_epoch, total_steps - run.step)
        bar = progress_bar(show, total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch",
                           leave=True)
        start_lr = learning_rate(schedule, lr, run.step, total_steps)
        batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]
        tally = _train_epoch(run, batches, bar)
        test_acc = None if evaluation is None else evaluate(model, *evaluation)
        _record_epoch(history, epoch, start_lr, tally, test_acc)
        if bar is not None:
            bar.set_postfix(_epoch_postfix(history))
            bar.close()
        if callback is not None:
            callback(history)
    return history


def _checked_options(epochs, batch_size, seed, max_shift, schedule, augment, max_steps,
                     callback):
    """Validate fit's options; return ``epochs, batch_size, seed, max_shift, max_steps``."""
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    max_shift = check_int(max_shift, "max_shift", minimum=0)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'cosine', 'step' or None, got {schedule!r}")
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False, got {augment!r}")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", minimum=1)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable, got {callback!r}")
    return epochs, batch_size, seed, max_shift, max_steps


def loss_and_scores(model, x, y):
    """``(loss, grads, scores)`` of a batch: from ``model.loss_and_scores`` if the model
    has it (as :class:`cnnlab.lenet.LeNet5` does), else ``model.loss`` and no scores."""
    if hasattr(model, "loss_and_scores"):
        return model.loss_and_scores(x, y)
    loss, grads = model.loss(x, y)
    return loss, grads, None


@dataclass
class _Run:
    """What every step of one :func:`fit` needs, and how many steps it has taken."""

    model: object
    optimizer: SGD
    x: np.ndarray
    y: np.ndarray
    lr: float
    schedule: str | None
    total_steps: int
    augment: bool
    max_shift: int
    rng: np.random.Generator
    step: int = 0

    def train_step(self, index) -> tuple[float, int | None]:
        """One SGD step on the examples ``index``: its loss, and how many of them the
        model classified right (None if the model does not give its scores)."""
        xb, yb = self.x[index], self.y[index]
        if self.augment:
            xb = random_shift(xb, self.max_shift, self.rng)
        self.optimizer.lr = learning_rate(self.schedule, self.lr, self.step, self.total_steps)
        loss, grads, scores = loss_and_scores(self.model, xb, yb)
        self.optimizer.step(grads)
        self.step += 1
        if scores is None or len(scores) != len(yb):
            return loss, None
        return loss, int(np.count_nonzero(np.argmax(scores, axis=1) == yb))


@dataclass
class _Tally:
    """The losses and right answers of one epoch's steps."""

    losses: list = field(default_factory=list)
    correct: int = 0
    seen: int = 0
    counted: bool = True  # False once a step could not count its right answers
    seconds: float = 0.0

    def add(self, loss: float, correct: int | None, size: int) -> None:
        self.losses.append(loss)
        if correct is None:
            self.counted = False
        else:
            self.correct += correct
        self.seen += size

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.seen if self.counted else None

    def running_postfix(self) -> dict:
        """What the progress bar shows during the epoch."""
        postfix = {"loss": f"{np.mean(self.losses[-50:]):.4f}"}
        if self.counted:
            postfix["acc"] = f"{100 * self.correct / self.seen:.1f}%"
        return postfix


def _train_epoch(run: _Run, batches: list, bar) -> _Tally:
    """One SGD step per batch of example indices; the epoch's tally."""
    tally = _Tally()
    start = time.perf_counter()
    for i, index in enumerate(batches):
        tally.add(*run.train_step(index), len(index))
        if bar is not None:
            bar.update(1)
            if i % 10 == 0 or i == len(batches) - 1:
                bar.set_postfix(tally.running_postfix(), refresh=False)
    tally.seconds = time.perf_counter() - start
    return tally


def _record_epoch(history: History, epoch: int, start_lr: float, tally: _Tally,
                  test_acc: float | None) -> None:
    seconds = tally.seconds
    history.epoch.append(epoch)
    history.train_loss.append(float(np.mean(tally.losses)))
    history.train_acc.append(tally.accuracy)
    history.lr.append(start_lr)
    history.seconds.append(seconds)
    history.images_per_second.append(tally.seen / seconds if seconds > 0 else float("inf"))
    history.step_loss.extend(float(v) for v in tally.losses)
    history.test_acc.append(test_acc)


def _epoch_postfix(history: History) -> dict:
    """What the progress bar shows at the end of an epoch."""
    postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
    if history.train_acc[-1] is not None:
        postfix["train"] = f"{100 * history.train_acc[-1]:.1f}%"
    if history.test_acc[-1] is not None:
        postfix["test"] = f"{100 * history.test_acc[-1]:.2f}%"
    return postfix
