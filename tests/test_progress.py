"""cnnlab.progress: when progress bars show, and what progress_bar gives."""

import io

import pytest

from cnnlab import progress


def test_an_explicit_choice_wins():
    assert progress.progress_enabled(True) is True
    assert progress.progress_enabled(False) is False
    assert progress.progress_enabled(0) is False


@pytest.mark.parametrize("tty", [True, False])
def test_none_means_a_terminal_or_jupyter(tty, monkeypatch):
    class Stream(io.StringIO):
        def isatty(self):
            return tty

    monkeypatch.setattr("sys.stderr", Stream())
    monkeypatch.setattr(progress, "in_jupyter", lambda: False)
    assert progress.progress_enabled(None) is tty
    monkeypatch.setattr(progress, "in_jupyter", lambda: True)
    assert progress.progress_enabled(None) is True


def test_outside_a_kernel_this_is_not_jupyter():
    assert progress.in_jupyter() is False


def test_progress_bar_is_none_when_off_and_a_bar_when_on(capsys):
    assert progress.progress_bar(False, total=3) is None
    bar = progress.progress_bar(True, total=3, desc="demo")
    bar.update(3)
    bar.close()
    assert "demo" in capsys.readouterr().err
