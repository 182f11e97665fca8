"""``python -m cnnlab train``: JSON output, saved files, the accuracy line, errors."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab import data
from cnnlab.__main__ import DEFAULTS, build_parser, main
from cnnlab.lenet import LeNet5

ROOT = Path(__file__).resolve().parents[1]


def test_json_output_and_saved_files(tmp_path, capsys):
    status = main(["train", "--data", "sample", "--max-steps", "3", "--json",
                   "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert status == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout holds the JSON object and nothing else
    assert result["data_source"] == "sample"
    assert result["epochs"] == 1 and result["steps"] == 3
    assert 0 <= result["test_accuracy"] <= 1 and result["train_images_per_second"] > 0
    assert result["test_images"] == 1000 and result["train_images"] == 4000
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"lenet5.npz", "learning_curve.png",
                                               "history.json"}
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = LeNet5.load(out / "lenet5.npz")
    assert model.num_params == 61_706
    history = json.loads((out / "history.json").read_text())
    assert len(history["step_loss"]) == 3
    assert "data: MNIST sample" in captured.err  # the log goes to stderr with --json


def test_text_output_ends_with_the_accuracy_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--data", "sample", "--epochs", "1",
         "--max-steps", "4", "--batch-size", "32", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("test accuracy: ")
    assert "on 1,000 MNIST sample digits" in lines[-1] and "images/s" in lines[-1]
    assert any(line.startswith("epoch   1/1") for line in lines)
    assert "Traceback" not in completed.stderr


def test_defaults_are_the_tuned_ones():
    args = build_parser().parse_args(["train"])
    assert (args.epochs, args.batch_size, args.lr, args.weight_decay, args.schedule,
            args.data, args.output_dir, args.threads, args.augment) == (
        DEFAULTS["epochs"], 64, 0.05, 5e-4, "cosine", "auto", "build", 1, True)


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "expected a positive integer, got 0"),
    (["train", "--lr", "-1"], "expected a positive number, got -1"),
    (["train", "--lr", "nan"], "expected a positive number, got nan"),
    (["train", "--lr", "fast"], "expected a positive number, got 'fast'"),
    (["train", "--epochs", "2.5"], "expected a positive integer, got '2.5'"),
    (["train", "--batch-size", "-07"], "expected a positive integer, got -7"),
    (["train", "--seed", "-1"], "expected an integer >= 0, got -1"),
    (["train", "--threads", "x"], "expected an integer >= 0, got 'x'"),
    (["train", "--weight-decay=-1e-3"], "expected a number >= 0, got -1e-3"),
    (["train", "--weight-decay", "inf"], "expected a number >= 0, got inf"),
    (["train", "--data", "web"], "invalid choice: 'web'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_full_data_unavailable_is_a_clean_error(tmp_path, monkeypatch, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(data, "MIRRORS", [f"http://127.0.0.1:{port}/"])
    status = main(["train", "--data", "full", "--data-dir", str(tmp_path / "none"),
                   "--output-dir", str(tmp_path / "out"), "--max-steps", "1"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: MNIST (source='full') is not available")
    assert not (tmp_path / "out").exists()


def test_saved_model_predicts_like_the_trained_one(tmp_path, capsys):
    main(["train", "--data", "sample", "--max-steps", "2", "--json", "--output-dir",
          str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    model = LeNet5.load(result["model_path"])
    digits = data.load_mnist("sample")
    accuracy = np.mean(model.predict(digits.x_test) == digits.y_test)
    assert accuracy == pytest.approx(result["test_accuracy"])


def test_fast_trains_the_same_steps_with_fastlenet5(tmp_path, capsys):
    runs = {}
    for name, extra in (("plain", []), ("fast", ["--fast"])):
        status = main(["train", "--data", "sample", "--max-steps", "3", "--json",
                       "--no-progress", "--output-dir", str(tmp_path / name), *extra])
        assert status == 0
        result = json.loads(capsys.readouterr().out)
        history = json.loads(Path(result["history_path"]).read_text())
        runs[name] = (result, history)
    assert runs["plain"][0]["model"] == "LeNet5" and runs["fast"][0]["model"] == "FastLeNet5"
    # Same seed, same weights, same batches: the same losses up to float32 rounding.
    np.testing.assert_allclose(runs["fast"][1]["step_loss"], runs["plain"][1]["step_loss"],
                               rtol=1e-4)
    assert LeNet5.load(runs["fast"][0]["model_path"]).num_params == 61_706


def test_fast_without_lenet_fast_is_a_clean_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cnnlab.lenet_fast", None)  # as in the student edition
    status = main(["train", "--data", "sample", "--max-steps", "1", "--fast",
                   "--output-dir", str(tmp_path / "out"), "--no-progress"])
    assert status == 1
    assert "--fast needs cnnlab/lenet_fast.py" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
