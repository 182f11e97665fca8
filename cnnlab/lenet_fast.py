"""FastLeNet5: :class:`cnnlab.lenet.LeNet5` with a training step built for speed.

Reference only: this module computes the same loss and gradients as the readable
exercise code (``cnnlab/layers``, ``cnnlab/pooling.py``, the tape of
``cnnlab/lenet.py``), so it holds the answers of ps2 and ps3 in another form. The
student edition leaves it out (listed in ``REFERENCE_ONLY``, ``autograder/course.py``;
skipped by ``package_files`` in ``autograder/student_edition.py``), and nothing a
student imports imports it.

Same network, same parameters (names, shapes, initialization: the same seed gives
the same weights), same methods (it *is* a :class:`LeNet5`); only
:meth:`FastLeNet5.loss_and_scores`, hence :meth:`~LeNet5.loss` and
:func:`cnnlab.train.fit`, take the fast path. ``forward``, ``predict`` and the
tape (``forward_pass`` / ``backward_pass``) are LeNet5's.

What makes the step fast (each is explained where it is done):

* feature maps are stored batch-last, ``(C, H, W, N)``: an im2col row is a few
  contiguous runs, one matrix product covers the whole slice of images, and
  flattening for the dense layers is free;
* buffers are allocated once and reused across steps (written with ``out=``);
* max pooling is ``np.maximum`` over the four strided 2x2 taps, and the bias and
  activation come after the pooling (a quarter of the work);
* the batch is processed in slices of 64 images (the slice's maps stay in the
  cache); with 2 BLAS threads allowed and at least two slices, two Python threads
  with 1-thread BLAS each take half of the slices (NumPy releases the GIL in its
  loops and in BLAS);
* conv2's input gradient is a col2im of one matrix product, not a full
  convolution over a window view.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cnnlab.lenet import IMAGE_SIZE, KERNEL, PIXEL_MEAN, PIXEL_STD, POOL, LeNet5

__all__ = ["FastLeNet5", "SLICE"]

#: Images per slice: enough for long matrix products, few enough that the slice's
#: buffers (about 16 MB for the classic network) come back from the cache, not from
#: memory, between the forward and the backward (slices of 32 and 128 were slower).
SLICE = 64
#: Columns (output pixels) per matrix product of a convolution layer. OpenBLAS is slow on
#: products with a tiny side and a huge other one (C1's weight gradient, (6, 50176) @
#: (50176, 25), takes 4x longer in one call than in chunks of 2,048 columns): chunks
#: whose operands fit in the L2 cache are fast.
CHUNK = 2048

#: Activations that never decrease, so that max pooling commutes with them.
MONOTONE = frozenset({"relu", "tanh"})

_POOL_EXECUTOR = None
_POOL_LOCK = threading.Lock()
#: Held for a whole 2-thread step: the BLAS thread count is process-wide, so two steps
#: at once (two models in two threads) would restore each other's setting wrongly.
_STEP_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One worker thread shared by every model (the caller's thread is the other)."""
    global _POOL_EXECUTOR
    with _POOL_LOCK:
        if _POOL_EXECUTOR is None:
            _POOL_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet-fast")
        return _POOL_EXECUTOR


def _forget_executor_after_fork() -> None:
    # A forked child inherits the executor but not its thread: work queued there would
    # never run, so the child makes its own.
    global _POOL_EXECUTOR, _POOL_LOCK, _STEP_LOCK
    _POOL_EXECUTOR, _POOL_LOCK, _STEP_LOCK = None, threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_forget_executor_after_fork)


class _Blas:
    """Reads and sets the BLAS thread count with threadpoolctl, if it is installed.

    The controller is built once: building one scans the loaded libraries, which
    would cost more than a whole step at batch 64.
    """

    _controller = None
    _loaded = False

    @classmethod
    def controller(cls):
        if not cls._loaded:
            cls._loaded = True
            try:
                from threadpoolctl import ThreadpoolController
                cls._controller = ThreadpoolController().select(user_api="blas")
            except (ImportError, ValueError):  # pragma: no cover - threadpoolctl missing
                cls._controller = None
        return cls._controller

    @classmethod
    def threads(cls) -> int:
        controller = cls.controller()
        if controller is None or not controller.lib_controllers:
            return 1
        return max(c.num_threads for c in controller.lib_controllers)

    @classmethod
    def set_threads(cls, threads: int) -> list[int]:
        """Set every BLAS library to ``threads``; return their previous counts."""
        controller = cls.controller()
        libs = controller.lib_controllers if controller is not None else []
        previous = [lib.num_threads for lib in libs]
        for lib in libs:
            lib.set_num_threads(threads)
        return previous

    @classmethod
    def restore(cls, previous: list[int]) -> None:
        """Give each BLAS library back the count :meth:`set_threads` returned."""
        controller = cls.controller()
        for lib, threads in zip(controller.lib_controllers if controller is not None else [],
                                previous):
            lib.set_num_threads(threads)


class _Workspace:
    """The buffers of one thread: maps, im2col matrices and gradients of a slice.

    Every buffer is a flat array sized for :data:`SLICE` images; :meth:`get` returns
    its first elements shaped for ``n`` images, so a smaller last slice still gets
    contiguous arrays (matrix products need them) without new allocations.
    """

    def __init__(self, model: FastLeNet5):
        self.model = model
        self.flat = {}

    def get(self, name: str, shape: tuple[int, ...], zero: bool = False,
            dtype=None) -> np.ndarray:
        size = math.prod(shape)
        flat = self.flat.get(name)
        if flat is None or flat.size < size:
            flat = self.flat[name] = np.zeros(size, dtype=dtype or self.model.dtype)
        view = flat[:size].reshape(shape)
        if zero:
            view.fill(0)
        return view


def _taps(z, pooled: int):
    """The four 2x2 taps of a ``(C, H, W, N)`` map: ``z[:, i::2, j::2]`` cropped to
    ``pooled x pooled`` (rows and columns no window reaches are dropped), in
    row-major order, as the readable max pooling visits them."""
    end = POOL * pooled
    return [z[:, i:end:POOL, j:end:POOL] for i in range(POOL) for j in range(POOL)]


class FastLeNet5(LeNet5):
    """LeNet5 whose training step (:meth:`loss_and_scores`) is built for speed.

    Takes :class:`~cnnlab.lenet.LeNet5`'s arguments and gives the same loss, scores
    and gradients as its readable step, up to float rounding (see the module's
    docstring for how). Reference only: not in the student edition.

    One step at a time per model: its buffers are the model's. With 2 threads, BLAS
    is set to 1 thread (process-wide) for the duration of the step.

    Examples
    --------
    >>> model = FastLeNet5(seed=0)
    >>> x = np.zeros((3, 28, 28), dtype=np.uint8)
    >>> loss, grads, scores = model.loss_and_scores(x, np.array([0, 1, 2]))
    >>> scores.shape, sorted(grads) == sorted(model.params)
    ((3, 10), True)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._workspaces = {}
        # Pool before the bias and the activation only where it changes nothing.
        self._pool_first = self.pooling == "max" and self.activation in MONOTONE

    def __repr__(self):
        return "Fast" + super().__repr__()

    # ---------------------------------------------------------------- the step

    def loss_and_scores(self, x, y):
        """Mean softmax cross-entropy, the gradient of every parameter and the scores.

        Same arguments and results as :meth:`LeNet5.loss_and_scores` (up to float
        rounding), and the same checks of ``x`` and ``y``.

        Returns
        -------
        loss : float
        grads : dict of str to ndarray
            New arrays, keyed like :attr:`params`.
        scores : ndarray, shape (N, num_classes)
        """
        x, y = self._checked_batch(x, y)
        n = y.shape[0]
        # With 2 threads allowed, each takes half of the slices, but only from two full
        # slices on: a batch of 64 cut in two slices of 32 measured slower than one slice
        # with 2-thread BLAS (the halved products and the hand-over cost more than the
        # second core gives back).
        threads = min(2, _Blas.threads()) if n >= 2 * SLICE else 1
        size = min(SLICE, math.ceil(n / threads))
        slices = [(start, min(start + size, n)) for start in range(0, n, size)]
        scores = np.empty((n, self.num_classes), dtype=self.dtype)
        if threads == 1 or len(slices) == 1:
            loss, grads = self._run(x, y, slices, n, scores, 0)
            return loss / n, grads, scores
        half = (len(slices) + 1) // 2
        # One BLAS thread per Python thread: OpenBLAS splits these small products
        # badly between 2 threads (and the elementwise work stays on one), while two
        # independent slices keep both cores busy with everything.
        with _STEP_LOCK:
            previous = _Blas.set_threads(1)
            try:
                other = _executor().submit(self._run, x, y, slices[half:], n, scores, 1)
                loss, grads = self._run(x, y, slices[:half], n, scores, 0)
                other_loss, other_grads = other.result()
            finally:
                _Blas.restore(previous)
        for name, grad in grads.items():
            grad += other_grads[name]
        return (loss + other_loss) / n, grads, scores

    def _checked_batch(self, x, y):
        """Validate ``x`` and ``y`` as :meth:`LeNet5.loss_and_scores` does; return them,
        ``x`` either uint8 ``(N, 28, 28)`` or prepared ``(N, 1, S, S)``."""
        y = self._labels_for(x, y)
        n = y.shape[0]
        if y.dtype.kind not in "iu":
            raise ValueError(f"y must be an array of integer class labels, got dtype {y.dtype}")
        bad = (y < 0) | (y >= self.num_classes)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"y must hold class labels in 0..{self.num_classes - 1}, got "
                             f"y[{first}]={int(y[first])}")
        if isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.shape[1:] in (
                (IMAGE_SIZE, IMAGE_SIZE), (1, IMAGE_SIZE, IMAGE_SIZE)):
            # Raw digits: each slice is scaled and padded straight into its batch-last
            # input buffer (no full-batch (N, 1, S, S) copy).
            return x.reshape(n, IMAGE_SIZE, IMAGE_SIZE), y
        return self.prepare(x), y

    def _workspace(self, index: int) -> _Workspace:
        if index not in self._workspaces:
            self._workspaces[index] = _Workspace(self)
        return self._workspaces[index]

    def _run(self, x, y, slices, total, scores, index):
        """Forward and backward of ``slices`` of the batch, with workspace ``index``;
        returns the summed loss and the summed gradients (of the mean loss)."""
        ws = self._workspace(index)
        grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        loss = 0.0
        for start, stop in slices:
            loss += self._slice(ws, x[start:stop], y[start:stop], total,
                                scores[start:stop], grads)
        return loss, grads

    # ------------------------------------------------------- one slice of images

    def _input(self, ws, x):
        """The slice's input, batch-last ``(1, S, S, n)``, standardized and padded."""
        n, side = x.shape[0], self.input_size
        buf = ws.get("input", (1, side, side, n))
        if x.ndim == 4:  # already prepared by LeNet5.prepare
            np.copyto(buf[0], x[:, 0].transpose(1, 2, 0))
            return buf
        pad = (side - IMAGE_SIZE) // 2
        buf[...] = -PIXEL_MEAN / PIXEL_STD  # the padding: a standardized 0 pixel
        inner = buf[0, pad:side - pad, pad:side - pad]
        # The same operations as LeNet5.prepare, so the same float32 values.
        np.multiply(x.transpose(1, 2, 0), 1 / 255 / PIXEL_STD, out=inner, casting="unsafe")
        inner -= PIXEL_MEAN / PIXEL_STD
        return buf

    def _im2col(self, ws, name, a, conv):
        """im2col of a batch-last map ``a`` ``(C, H, W, n)`` for a 5x5 valid convolution:
        ``(C * 25, conv, conv, n)``, row ``(c, i, j)`` = ``a[c, i:i + conv, j:j + conv]``.

        Batch-last, every row is ``conv`` contiguous runs of ``conv * n`` values, and
        the whole slice is one matrix ``(C * 25, conv * conv * n)``: one GEMM per layer
        and slice instead of one per image.
        """
        c, n = a.shape[0], a.shape[3]
        cols = ws.get(name, (c, KERNEL, KERNEL, conv, conv, n))
        for i in range(KERNEL):
            for j in range(KERNEL):
                np.copyto(cols[:, i, j], a[:, i:i + conv, j:j + conv])
        return cols.reshape(c * KERNEL * KERNEL, conv * conv * n)

    def _act_forward(self, a):
        if self.activation == "relu":
            np.maximum(a, 0, out=a)
        else:
            np.tanh(a, out=a)

    def _act_backward(self, da, a):
        """``da *= f'(.)`` in place, from the activation's output ``a``."""
        if self.activation == "relu":
            # Where the output is 0 the gradient is 0 (as relu_backward: out > 0).
            np.multiply(da, a > 0, out=da)
        else:
            da *= 1 - a * a

    def _conv_stage(self, ws, stage, a, weight, bias, conv, pooled):
        """Convolution, 2x2 pooling, bias and activation of one stage, batch-last.

        Returns the activated pooled map and what the backward needs.
        """
        n = a.shape[3]
        f = weight.shape[0]
        cols = self._im2col(ws, f"cols{stage}", a, conv)
        z = ws.get(f"z{stage}", (f, conv, conv, n))
        # The bias is *not* added here: see below. One product per CHUNK columns.
        w, zz = weight.reshape(f, -1), z.reshape(f, -1)
        for s in range(0, zz.shape[1], CHUNK):
            np.matmul(w, cols[:, s:s + CHUNK], out=zz[:, s:s + CHUNK])
        out = ws.get(f"a{stage}", (f, pooled, pooled, n))
        b = bias.reshape(f, 1, 1, 1)
        if self._pool_first:
            # Max pooling first, then bias and activation, on a quarter of the values:
            # the bias is the same in every window, so max(z + b) = max(z) + b, and
            # ReLU and tanh are non-decreasing, so max(f(u), f(v)) = f(max(u, v)).
            # The values are those of conv + bias -> activation -> pooling (and the
            # gradient goes to the same maximum; see _pool_backward).
            peak = ws.get(f"peak{stage}", out.shape)  # kept: backward finds the maxima again
            self._pool(z, peak)
            np.add(peak, b, out=out)
            self._act_forward(out)
            return out, (cols, z, peak)
        # Average pooling does not commute with a nonlinear activation, nor max pooling
        # with a non-monotone one: the plain order, conv + bias -> activation -> pooling,
        # on the full map (z then holds the activation's output).
        z += b
        self._act_forward(z)
        self._pool(z, out)
        return out, (cols, z, out)

    def _pool(self, z, out):
        """2x2 pooling of ``z`` into ``out``: the maximum or the mean of the four taps."""
        taps = _taps(z, out.shape[1])
        if self.pooling == "max":
            np.maximum(taps[0], taps[1], out=out)
            np.maximum(out, taps[2], out=out)
            np.maximum(out, taps[3], out=out)
        else:
            np.add(taps[0], taps[1], out=out)
            out += taps[2]
            out += taps[3]
            out /= POOL * POOL

    def _pool_backward(self, ws, stage, dout, saved, conv, pooled):
        """Gradient with respect to the convolution's output ``z`` (before the bias).

        ``dout`` is the gradient with respect to the pooled map: before the activation
        if it came after the pooling (``_pool_first``), after it otherwise.
        """
        _, z, peak = saved
        dz = ws.get(f"dz{stage}", z.shape, zero=conv != POOL * pooled)
        dtaps = _taps(dz, pooled)
        if self.pooling == "max":
            # Each window's gradient goes to its first maximum in row-major order, as
            # max_pool2d_backward sends it: hit = (tap == max) and not found yet.
            hit = ws.get("hit", peak.shape, dtype=bool)
            free = ws.get("free", peak.shape, dtype=bool)  # windows whose max is not found yet
            for k, (tap, dtap) in enumerate(zip(_taps(z, pooled), dtaps)):
                np.equal(tap, peak, out=hit)
                if k:
                    hit &= free
                # Windows do not overlap: every pixel of dz is written exactly once.
                np.multiply(dout, hit, out=dtap)
                if k == 0:
                    np.logical_not(hit, out=free)
                elif k < len(dtaps) - 1:
                    free ^= hit
        else:
            share = dout * (1 / (POOL * POOL))
            for dtap in dtaps:
                np.copyto(dtap, share)
        if not self._pool_first:
            self._act_backward(dz, z)  # z holds the activation's output here
        return dz

    def _slice(self, ws, x, y, total, scores, grads):
        """Forward and backward of one slice; adds its gradients into ``grads``."""
        p = self.params
        n = x.shape[0]
        (conv1, pool1), (conv2, pool2) = self.map_sizes
        a0 = self._input(ws, x)
        a1, saved1 = self._conv_stage(ws, 1, a0, p["C1.w"], p["C1.b"], conv1, pool1)
        a2, saved2 = self._conv_stage(ws, 2, a1, p["C3.w"], p["C3.b"], conv2, pool2)
        # Batch-last, the flattened maps are already the (features, n) matrix, in
        # LeNet5's (c, h, w) order: the dense layers work on transposed activations,
        # h = W^T a + b, so no copy is needed.
        acts = [a2.reshape(-1, n)]
        names = self.dense_names
        for name in names:
            w, b = p[f"{name}.w"], p[f"{name}.b"]
            h = ws.get(f"h{name}", (w.shape[1], n))
            np.matmul(w.T, acts[-1], out=h)
            h += b[:, None]
            if name != "OUT":
                self._act_forward(h)
            acts.append(h)
        # Softmax cross-entropy on the (classes, n) scores, as softmax_cross_entropy.
        s = acts[-1]
        scores[...] = s.T
        columns = np.arange(n)
        shifted = s - s.max(axis=0, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
        loss = -float(log_probs[y, columns].sum(dtype=np.float64))
        d = np.exp(log_probs)
        d[y, columns] -= 1
        d /= total  # the gradient of the mean over the whole batch
        # Dense layers backward: dW = a d^T, db = sum of d, da = W d.
        for k in range(len(names) - 1, -1, -1):
            name = names[k]
            _accumulate(grads[f"{name}.w"], acts[k], d.T)
            grads[f"{name}.b"] += d.sum(axis=1)
            d_in = ws.get(f"d{name}", acts[k].shape)
            np.matmul(p[f"{name}.w"], d, out=d_in)
            if k > 0:
                self._act_backward(d_in, acts[k])
            d = d_in
        # Stage 2 backward.
        da2 = d.reshape(a2.shape)
        if self._pool_first:
            self._act_backward(da2, a2)  # the activation came after the pooling
        dz2 = self._pool_backward(ws, 2, da2, saved2, conv2, pool2)
        self._conv_grads(ws, grads, "C3", dz2, saved2[0])
        da1 = self._col2im(ws, dz2, p["C3.w"], a1.shape, conv2)
        if self._pool_first:
            self._act_backward(da1, a1)
        dz1 = self._pool_backward(ws, 1, da1, saved1, conv1, pool1)
        # C1's input is the images: its gradient is never needed.
        self._conv_grads(ws, grads, "C1", dz1, saved1[0])
        return loss

    def _conv_grads(self, ws, grads, name, dz, cols):
        """Add a convolution's weight and bias gradients: ``dW = dz cols^T``.

        The slice's ``conv * conv * n`` output pixels are the inner dimension (long,
        with a small result): summed CHUNK columns at a time (see CHUNK), as
        ``cols dz^T`` (``(C * 25, F)``), which OpenBLAS runs faster than ``dz cols^T``.
        """
        f = dz.shape[0]
        dz = dz.reshape(f, -1)
        grad = grads[f"{name}.w"].reshape(f, -1).T  # a (C * 25, F) view of the gradient
        tmp = ws.get(f"dw{name}", grad.shape)
        for s in range(0, dz.shape[1], CHUNK):
            np.matmul(cols[:, s:s + CHUNK], dz[:, s:s + CHUNK].T, out=tmp)
            grad += tmp
        grads[f"{name}.b"] += dz.sum(axis=1)

    def _col2im(self, ws, dz, weight, shape, conv):
        """Gradient with respect to the stage-2 input: col2im of ``W^T dz``.

        One GEMM gives every receptive field's gradient ``(C * 25, conv, conv, n)``;
        row ``(c, i, j)`` goes back to ``a[c, i:i + conv, j:j + conv]``, where the
        overlapping fields add up: 25 strided additions of ``(C, conv, conv, n)``.
        """
        f, c = weight.shape[:2]
        n = dz.shape[3]
        dcols = ws.get("dcols2", (c, KERNEL, KERNEL, conv, conv, n))
        np.matmul(weight.reshape(f, -1).T, dz.reshape(f, -1),
                  out=dcols.reshape(c * KERNEL * KERNEL, -1))
        da = ws.get("da1", shape, zero=True)
        for i in range(KERNEL):
            for j in range(KERNEL):
                da[:, i:i + conv, j:j + conv] += dcols[:, i, j]
        return da


def _accumulate(grad, a, b):
    """``grad += a @ b`` (``grad`` 2-D, C-contiguous), without a temporary when possible."""
    if not grad.any():
        np.matmul(a, b, out=grad)
    else:
        grad += a @ b
