"""Read the sandboxed child's frames: the one parser of untrusted bytes from the sandbox.

Frames (see :mod:`autograder._sandbox_child`): a 4-byte big-endian length and a
JSON header, each followed by the ``.npy`` bytes of the arrays it announces
(8-byte length + bytes each). Every size is bounded.

Student code can write anything to the pipe, so the parser fails closed: any
malformed input (too deep, too large, wrong types, undecodable bytes) raises
:class:`ValueError` and nothing else, and the reader stays broken afterwards,
so the caller can stop the sandbox and score what it had.
"""

from __future__ import annotations

import io
import json
import math
import struct

import numpy as np

MAX_HEADER = 1 << 20
MALFORMED = "malformed output from the sandbox"
# The header's fields and their types; any other field must be a plain scalar,
# so a header is never nested deeper than a list of names.
FIELDS: dict[str, tuple[type, ...]] = {
    "ev": (str,), "task": (str,), "case": (int,), "ok": (bool,),
    "error": (str,), "kind": (str,), "why": (str,), "arrays": (list,),
}
SCALARS = (str, int, float, bool, type(None))


def parse_header(raw: bytes) -> dict:
    """The JSON header, checked against :data:`FIELDS`; ``ValueError`` if anything is off.

    ``json.loads`` can raise much more than ``JSONDecodeError`` on hostile input
    (``RecursionError`` on ``[[[[…``, ``UnicodeDecodeError``, ``ValueError`` on a
    5,000-digit integer, ``MemoryError``): all of it is the student's output.
    """
    try:
        header = json.loads(raw)
    except Exception as exc:
        raise ValueError(f"{MALFORMED} ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("ev"), str):
        raise ValueError(f"{MALFORMED} (a header is not an event)")
    for key, value in header.items():
        kinds = FIELDS.get(key, SCALARS)
        # bool is an int: a case index of True is refused
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{MALFORMED} (field {key[:40]!r} has the wrong type)")
    names = header.get("arrays", [])
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{MALFORMED} (array names are not strings)")
    return header


def load_array(blob: bytes) -> np.ndarray:
    """An array from ``.npy`` bytes whose header must match their length exactly.

    Checked before loading, so that a header announcing a terabyte array in a
    few bytes costs nothing (``np.load`` would allocate the array first).
    """
    stream = io.BytesIO(blob)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError("object arrays are not accepted")
    if len(blob) - stream.tell() != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"the array's header (shape {shape}, {dtype}) does not match its size")
    return np.load(io.BytesIO(blob), allow_pickle=False)


class FrameReader:
    """Parse the child's frames, with bounds on every size; raises only ``ValueError``."""

    def __init__(self, max_array: int, max_total: int):
        self.buffer = bytearray()
        self.max_array, self.max_total, self.received = max_array, max_total, 0
        self.pending: dict | None = None
        self.arrays: dict = {}
        self.waiting: list[str] = []
        self.broken: str | None = None

    def feed(self, data: bytes) -> list[tuple[dict, dict]]:
        """The complete messages in ``data`` and what came before it: [(header, arrays)].

        The messages before a malformed frame are returned; :attr:`broken` then says
        what was wrong, and the next call raises it.
        """
        if self.broken:
            raise ValueError(self.broken)
        messages: list[tuple[dict, dict]] = []
        try:
            self._feed(data, messages)
        except ValueError as exc:
            self.broken = str(exc)
        except Exception as exc:  # never expected: still the sandbox's output, fail closed
            self.broken = f"{MALFORMED} ({type(exc).__name__})"
        if self.broken and not messages:
            raise ValueError(self.broken)
        return messages

    def _feed(self, data: bytes, messages: list) -> None:
        self.received += len(data)
        if self.received > self.max_total:
            raise ValueError(f"the package's outputs exceeded {self.max_total >> 20} MB")
        self.buffer += data
        while True:
            if self.pending is None:
                if len(self.buffer) < 4:
                    break
                (size,) = struct.unpack(">I", self.buffer[:4])
                if size > MAX_HEADER:
                    raise ValueError(f"{MALFORMED} (oversized header)")
                if len(self.buffer) < 4 + size:
                    break
                header = parse_header(bytes(self.buffer[4:4 + size]))
                del self.buffer[:4 + size]
                self.pending, self.arrays = header, {}
                self.waiting = list(header.get("arrays", []))
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
                    self.arrays[name] = load_array(blob)
                except Exception as exc:  # anything unreadable is the student's output
                    self.arrays[name] = ValueError(f"unreadable output {name[:80]!r}: {exc}")
                continue
            messages.append((self.pending, self.arrays))
            self.pending = None
