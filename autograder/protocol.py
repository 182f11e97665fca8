"""Read the sandboxed child's frames: the one parser of untrusted bytes from the sandbox.

Frames (see :mod:`autograder._sandbox_child`): a 4-byte big-endian length and a
JSON header, each followed by the ``.npy`` bytes of the arrays it announces
(8-byte length + bytes each). Every size is bounded.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np


class FrameReader:
    """Parse the child's frames, with bounds on every size."""

    def __init__(self, max_array: int, max_total: int):
        self.buffer = bytearray()
        self.max_array, self.max_total, self.received = max_array, max_total, 0
        self.pending: dict | None = None
        self.arrays: dict = {}
        self.waiting: list[str] = []

    def feed(self, data: bytes) -> list[tuple[dict, dict]]:
        self.received += len(data)
        if self.received > self.max_total:
            raise ValueError(f"the package's outputs exceeded {self.max_total >> 20} MB")
        self.buffer += data
        messages = []
        while True:
            if self.pending is None:
                if len(self.buffer) < 4:
                    break
                (size,) = struct.unpack(">I", self.buffer[:4])
                if size > 1 << 20:
                    raise ValueError("malformed output from the sandbox (oversized header)")
                if len(self.buffer) < 4 + size:
                    break
                header = json.loads(bytes(self.buffer[4:4 + size]))
                del self.buffer[:4 + size]
                if not isinstance(header, dict):
                    raise ValueError("malformed output from the sandbox")
                names = header.get("arrays") or []
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise ValueError("malformed output from the sandbox")
                self.pending, self.arrays, self.waiting = header, {}, list(names)
            if self.waiting:
                if len(self.buffer) < 8:
                    break
                (size,) = struct.unpack(">Q", self.buffer[:8])
                if size > self.max_array:
                    raise ValueError(f"an output array is larger than {self.max_array >> 20} MB")
                if len(self.buffer) < 8 + size:
                    break
                blob = bytes(self.buffer[8:8 + size])
                del self.buffer[:8 + size]
                name = self.waiting.pop(0)
                try:
                    self.arrays[name] = np.load(io.BytesIO(blob), allow_pickle=False)
                except Exception as exc:  # anything unreadable is the student's output
                    self.arrays[name] = ValueError(f"unreadable output {name!r}: {exc}")
                continue
            messages.append((self.pending, self.arrays))
            self.pending = None
        return messages
