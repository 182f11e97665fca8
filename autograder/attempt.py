"""One run of the sandboxed child: start it, read its frames within deadlines, stop it.

:class:`autograder.runner.TaskRun` starts as many attempts as crashes and hangs need;
:func:`exit_reason` says in words why an attempt's process ended.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time

from autograder.protocol import FrameReader


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def exit_reason(returncode: int | None, memory_mb: int, jailed: bool = False) -> str:
    """Why the child stopped, in words."""
    if returncode is None:
        return "it was stopped"
    if jailed and returncode > 128:  # the jail reports a death by signal N as 128 + N
        returncode = 128 - returncode
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGXCPU":
            return "it ran out of CPU time"
        if name == "SIGKILL":
            return f"it was killed (over {memory_mb} MB of memory, or out of time)"
        if name == "SIGXFSZ":
            return "it wrote too much"
        return f"it crashed ({name})"
    return f"the process exited with code {returncode} (os._exit or a crash)"


class Attempt:
    """One run of the child over some tasks."""

    def __init__(self, command, env, cwd, limits):
        read_fd, write_fd = os.pipe()
        self.process = subprocess.Popen(
            [*command, str(write_fd)], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,),
            start_new_session=True)
        os.close(write_fd)
        self.fd = read_fd
        self.reader = FrameReader(limits.max_output_mb << 20, limits.max_total_output_mb << 20)

    def events(self, deadline_for):
        """Yield (header, arrays) until EOF; yield ("timeout", why) when a deadline passes."""
        selector = selectors.DefaultSelector()
        selector.register(self.fd, selectors.EVENT_READ)
        try:
            while True:
                deadline, why = deadline_for()
                wait = deadline - time.monotonic()
                if wait <= 0:
                    yield {"ev": "timeout", "why": why}, {}
                    return
                if not selector.select(timeout=min(wait, 1.0)):
                    continue
                data = os.read(self.fd, 1 << 20)
                if not data:
                    return
                try:
                    messages = self.reader.feed(data)
                except (ValueError, json.JSONDecodeError) as exc:
                    yield {"ev": "garbage", "why": str(exc)}, {}
                    return
                yield from messages  # those that came before any garbage in this read
                if self.reader.broken:
                    yield {"ev": "garbage", "why": self.reader.broken}, {}
                    return
        finally:
            selector.close()
            os.close(self.fd)

    def kill(self) -> None:
        """Kill the child and its whole session, now."""
        _kill(self.process)

    def stop(self) -> int | None:
        """Wait briefly for the child to exit (else kill it); its return code or None."""
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                _kill(self.process)
                return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of the session
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.returncode
