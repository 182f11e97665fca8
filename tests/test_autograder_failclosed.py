"""Every parser and unpacker fails closed, per student: each attack is performed here.

* the sandbox's frame parser: forged headers (500,000-deep JSON, wrong types,
  undecodable bytes, lying ``.npy`` headers) are a ``ValueError``, never more,
  and through the sandbox they cost the forger's tests only;
* ``ingest``: long member names, a file and a folder of the same name, corrupt,
  encrypted or oddly compressed zips, a nested zip bomb: that student gets a
  note, everyone else is collected, and the bytes written stay in the budget;
* the submission time is the collection's, never the student's ``timestamp.txt``;
* ``feedback``: a student whose feedback would leak a hidden test, that nbgrader
  cannot render, or that holds a script gets none (and the class goes on);
  gradebook comments and sandbox messages are escaped, active outputs dropped.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from autograder import archives as archives_module
from autograder import ingest as ingest_module
from autograder.ingest import FAILED, collection_time, ingest
from autograder.protocol import FrameReader

# --------------------------------------------------------------------------------------
# The frame parser


def frame(header: bytes, *blobs: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header + b"".join(
        struct.pack(">Q", len(b)) + b for b in blobs)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


FORGED = {
    "500,000-deep list": b"[" * 500_000,
    "500,000-deep object": b'{"a":' * 500_000,
    "deep inside a valid event": b'{"ev": "case", "error": ' + b"[" * 500_000,
    "invalid UTF-8": b'{"ev": "\xff\xfe"}',
    "UTF-16 garbage": b"\xff\xfe\x00",
    "not JSON": b"junk!",
    "a list": b'["ev", "case"]',
    "a string": b'"case"',
    "no event": b'{"task": "t1"}',
    "a numeric event": b'{"ev": 1}',
    "a 5,000-digit case": b'{"ev": "case", "case": 1' + b"0" * 5000 + b"}",
    "a NaN case": b'{"ev": "case", "case": NaN}',
    "a boolean case": b'{"ev": "case", "case": true}',
    "a nested error": b'{"ev": "case", "error": {"a": [1, 2]}}',
    "arrays not a list": b'{"ev": "case", "arrays": "out"}',
    "array names not strings": b'{"ev": "case", "arrays": [1]}',
    "a nested unknown field": b'{"ev": "case", "extra": [[[]]]}',
}


@pytest.mark.parametrize("header", FORGED.values(), ids=FORGED.keys())
def test_forged_headers_are_a_value_error_and_nothing_else(header):
    reader = FrameReader(max_array=1000, max_total=10 << 20)
    with pytest.raises(ValueError, match="malformed output from the sandbox"):
        reader.feed(frame(header))
    # and the reader stays closed: nothing after garbage is believed
    with pytest.raises(ValueError, match="malformed"):
        reader.feed(frame(b'{"ev": "done"}'))


def test_good_frames_before_garbage_in_one_read_are_kept():
    """The child's 'ready' and a student's junk can arrive in one read: 'ready' counts,
    the junk breaks the stream from there on."""
    reader = FrameReader(max_array=1000, max_total=10 << 20)
    messages = reader.feed(frame(b'{"ev": "ready"}') + b"\x00\x00\x00\x05junk!")
    assert messages == [({"ev": "ready"}, {})]
    assert "malformed" in reader.broken
    with pytest.raises(ValueError, match="malformed"):
        reader.feed(frame(b'{"ev": "done"}'))


def test_deep_json_fails_closed_in_a_worker_thread_too():
    """Grading runs submissions in a thread pool: the parser must not need a deep stack."""
    outcome = []

    def parse():
        try:
            FrameReader(1000, 10 << 20).feed(frame(b"[" * 500_000))
        except BaseException as exc:  # noqa: BLE001 -- the test records whatever escapes
            outcome.append(exc)

    thread = threading.Thread(target=parse)
    thread.start()
    thread.join(60)
    assert len(outcome) == 1 and type(outcome[0]) is ValueError, outcome


def test_oversized_and_split_headers():
    with pytest.raises(ValueError, match="oversized header"):
        FrameReader(1000, 1 << 30).feed(struct.pack(">I", (1 << 20) + 1))
    reader = FrameReader(1000, 1 << 20)
    data = frame(b'{"ev": "start", "task": "t1", "note": null}')
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:]) == [({"ev": "start", "task": "t1", "note": None}, {})]


def npy_header(descr: str, shape: tuple) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_lying_array_headers_are_the_students_output_not_an_allocation():
    import tracemalloc
    arrays = {
        "good": npy(np.arange(3.0)),
        "huge": npy_header("<f8", (1 << 27,)) + bytes(24),  # says 1 GB, holds 24 bytes
        "short": npy(np.arange(3.0))[:-8],
        "long": npy(np.arange(3.0)) + bytes(8),
        "objects": npy_header("|O", (2,)) + bytes(16),
        "garbage": b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 200,
        "not npy": b"hello",
    }
    reader = FrameReader(max_array=10_000, max_total=1 << 20)
    data = frame(json.dumps({"ev": "case", "arrays": list(arrays)}).encode(), *arrays.values())
    tracemalloc.start()
    try:
        [(header, parsed)] = reader.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, peak
    assert list(parsed["good"]) == [0.0, 1.0, 2.0]
    for name in list(arrays)[1:]:
        assert isinstance(parsed[name], ValueError), name


def test_every_frame_the_child_sends_still_parses():
    """The child's own messages (see _sandbox_child.Channel.send) are accepted."""
    messages = [{"ev": "ready"}, {"ev": "start", "task": "t"},
                {"ev": "import-error", "task": "t", "error": "ImportError: x"},
                {"ev": "imported", "task": "t"},
                {"ev": "case", "task": "t", "case": 0, "error": "NotImplementedError",
                 "kind": "not-implemented"},
                {"ev": "case", "task": "t", "case": 1, "ok": True, "arrays": ["out"]},
                {"ev": "end", "task": "t"}, {"ev": "done"}]
    data = b"".join(frame(json.dumps(m).encode(), *([npy(np.eye(2))] if "arrays" in m else []))
                    for m in messages)
    parsed = FrameReader(10_000, 1 << 20).feed(data)
    assert [h for h, _ in parsed] == messages
    assert parsed[5][1]["out"].shape == (2, 2)


def runner_processes(boxes: Path) -> set[int]:
    """Sandbox children still alive whose box lies under ``boxes`` (this test's own: other
    gradings on the machine do not count)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if b"_runner.py" in command and str(boxes).encode() in command:
            found.add(int(entry.name))
    return found


@pytest.mark.slow
def test_a_deep_json_frame_from_student_code_costs_only_that_student(tmp_path):
    """Through the sandbox: the forged frame fails the package's tests, the child is killed."""
    from autograder.casebank import CaseBank
    from autograder.sandbox import Limits, run_sandbox
    from autograder.student_edition import write_student_edition
    from autograder.submissions import solve
    from autograder.testcells import CheckCall, GradedCell
    cells = [GradedCell("01", "test_pad2d", 1, "test", "", [CheckCall("signal.pad2d")])]
    trusted = write_student_edition(tmp_path / "trusted", "ps1")
    limits = Limits(cell_timeout=10, submission_timeout=60, startup_timeout=60)
    boxes = tmp_path / "boxes"
    boxes.mkdir()
    scores = {}
    for name, prelude in {"honest": "", "forger": (
            "import os as _os, struct as _struct, sys as _sys\n"
            "_os.write(int(_sys.argv[-1]), _struct.pack('>I', 500_000) + b'[' * 500_000)\n")
    }.items():
        package = tmp_path / name / "cnnlab"
        shutil.copytree(trusted, package)
        solve(package, "signal.py", ["pad2d"])
        path = package / "signal.py"
        marker = "\n__all__ = ["
        path.write_text(path.read_text().replace(marker, "\n" + prelude + marker, 1))
        report = run_sandbox(package, trusted, CaseBank(cells), cells, limits, workroot=boxes)
        scores[name] = report.cells["test_pad2d"]
    assert scores["honest"].score == 1, scores["honest"]
    assert scores["forger"].score == 0 and "malformed" in scores["forger"].message, \
        scores["forger"]
    time.sleep(0.5)
    assert runner_processes(boxes) == set()


# --------------------------------------------------------------------------------------
# ingest


def raw_zip(path: Path, members: list[tuple]) -> Path:
    """A zip written by hand: (name, stored bytes, crc, size[, method, flags]) per member.

    zipfile cannot write precompressed data, lying headers or unknown methods.
    """
    out, central = bytearray(), bytearray()
    for name, data, crc, size, *rest in members:
        method = rest[0] if rest else 8
        flags = rest[1] if len(rest) > 1 else 0
        encoded, offset = name.encode(), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc,
                           len(data), size, len(encoded), 0) + encoded + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0,
                               0x21, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0,
                               offset) + encoded
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                                 len(central), len(out), 0)
    path.write_bytes(bytes(out))
    return path


def deflated_zeros(size: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, crc32, size) of ``size`` zero bytes."""
    zeros = bytes(size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(zeros) + packer.flush(), zlib.crc32(zeros), size


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


NOTEBOOK = "ps1/01_convolution_1d.ipynb"


def honest(name: str = NOTEBOOK) -> dict[str, bytes]:
    return {name: b"{}", "ps1/cnnlab/signal.py": b"def f(): pass\n"}


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Send ingest's scratch to a folder the test can watch."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def disk_usage(*folders: Path) -> int:
    return sum(p.stat().st_size for folder in folders for p in folder.rglob("*")
               if p.is_file() and not p.is_symlink())


def class_zip(path: Path, students: dict[str, bytes | dict[str, bytes]]) -> Path:
    """A class export: a zip per student (bytes) or a folder per student (dict of files)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for student, content in students.items():
            if isinstance(content, bytes):
                zf.writestr(f"export/{student}.zip", content)
            else:
                for name, data in content.items():
                    zf.writestr(f"export/{student}/{name}", data)
    return path


def test_one_students_broken_archive_is_that_students_note(tmp_path, scratch_root):
    crc_ok = zlib.crc32(b"{}")
    stream, crc, size = deflated_zeros(100_000)
    broken = {
        "corrupt": b"PK\x03\x04 this is not a zip at all" * 10,
        "bad_crc": raw_zip(tmp_path / "c.zip", [(NOTEBOOK, b"{}", crc_ok ^ 1, 2, 0)])
        .read_bytes(),
        "method_99": raw_zip(tmp_path / "m.zip", [(NOTEBOOK, b"{}", crc_ok, 2, 99)])
        .read_bytes(),
        "encrypted": raw_zip(tmp_path / "e.zip", [(NOTEBOOK, b"{}", crc_ok, 2, 0, 1)])
        .read_bytes(),
        "truncated": raw_zip(tmp_path / "t.zip", [(NOTEBOOK, stream[:50], crc, size)])
        .read_bytes(),
        "garbage_deflate": raw_zip(tmp_path / "g.zip", [(NOTEBOOK, b"\xff" * 64, crc, 9999)])
        .read_bytes(),
        "nested_corrupt": {"submission.zip": b"PK\x05\x06 not a zip either"},  # folder + zip
    }
    students = {"alice": {**honest(), "../../escape.txt": b"x"}, **broken,
                "zoe": zip_bytes(honest())}
    course = tmp_path / "course"
    found = ingest(class_zip(tmp_path / "class.zip", students), "ps1", course)
    assert set(found) == set(students)
    assert any("unsafe path" in n for n in found["alice"])
    assert not list(tmp_path.rglob("escape.txt"))
    for name in ("alice", "zoe"):
        assert (course / "submitted" / name / NOTEBOOK).read_bytes() == b"{}", name
        assert not any(n.startswith(FAILED) for n in found[name]), found[name]
    errors = set()
    for name in broken:
        assert found[name] and found[name][0].startswith(FAILED), (name, found[name])
        assert list((course / "submitted" / name / "ps1").iterdir()) == [], name
        errors.add(found[name][0][len(FAILED):].split(":")[0])
    # zipfile.BadZipFile, NotImplementedError (method 99), RuntimeError (encrypted), zlib.error
    assert errors >= {"BadZipFile", "NotImplementedError", "RuntimeError", "error"}, errors
    assert list(scratch_root.iterdir()) == []  # no scratch left behind


def test_unwritable_member_names_are_skipped_with_a_note(tmp_path, scratch_root):
    long_name = "ps1/" + "a" * 300 + ".py"
    deep_name = "ps1/" + "/".join(["d" * 200] * 25) + "/x.py"  # a path over 4096 bytes
    clash = {**honest(), "ps1/cnnlab/layers": b"a file", "ps1/cnnlab/layers/conv.py": b"x = 1\n"}
    students = {
        "long": {**honest(), long_name: b"x", deep_name: b"y"},
        "clash": clash,
        "clash_zip": zip_bytes(clash),
        "x" * 300: honest(),  # a 300-character student folder
    }
    course = tmp_path / "course"
    found = ingest(class_zip(tmp_path / "class.zip", students), "ps1", course)
    assert set(found) == {"long", "clash", "clash_zip", "x" * 64}
    for student, notes in found.items():
        assert not any(n.startswith(FAILED) for n in notes), (student, notes)
        assert (course / "submitted" / student / NOTEBOOK).exists(), student
        assert (course / "submitted" / student / "ps1/cnnlab/signal.py").exists(), student
    assert any("cannot be written" in n for n in found["long"])
    assert any("cannot be written" in n for n in found["clash"] + found["clash_zip"])
    assert list(scratch_root.iterdir()) == []


def test_a_corrupt_zip_in_a_folder_export_costs_only_its_student(tmp_path, scratch_root):
    export = tmp_path / "export"
    (export / "bob").mkdir(parents=True)
    (export / "bob" / "submission.zip").write_bytes(b"not a zip")
    (export / "carol.zip").write_bytes(zip_bytes(honest()))
    (export / "dave.zip").write_bytes(zip_bytes(honest())[:-30])  # truncated directory
    course = tmp_path / "course"
    found = ingest(export, "ps1", course)
    assert found["bob"][0].startswith(FAILED) and found["dave"][0].startswith(FAILED)
    assert (course / "submitted" / "carol" / NOTEBOOK).exists()


class Watch:
    """Wrap the one function that writes unpacked bytes: record the peak disk use."""

    def __init__(self, monkeypatch, scratch: Path, course: Path):
        self.scratch, self.course = scratch, course
        self.peak_scratch = self.peak_total = self.written = 0
        self.students_at_once = 0
        original = archives_module._extract_member

        def extract(zf, info, target, budget, label):
            before = target.stat().st_size if target.is_file() else 0
            try:
                original(zf, info, target, budget, label)
            finally:
                self.written += (target.stat().st_size if target.is_file() else 0) - before
                in_scratch = disk_usage(scratch)
                self.peak_scratch = max(self.peak_scratch, in_scratch)
                self.peak_total = max(self.peak_total, in_scratch + disk_usage(course))
                runs = [p for p in scratch.iterdir() if p.name.startswith("cnnlab-ingest-")]
                self.students_at_once = max(self.students_at_once,
                                            sum(len(list(r.iterdir())) for r in runs))

        monkeypatch.setattr(archives_module, "_extract_member", extract)


def test_a_nested_zip_bomb_stays_in_the_budget(tmp_path, scratch_root, monkeypatch):
    budget, copy_limit = 16 << 20, 8 << 20
    monkeypatch.setattr(archives_module, "MAX_STUDENT_UNPACKED", budget)
    monkeypatch.setattr(ingest_module, "MAX_SUBMISSION", copy_limit)
    stream, crc, size = deflated_zeros(64 << 20)
    # 2 MB that unpacks to 2 GB, declared honestly...
    flat = raw_zip(tmp_path / "flat.zip", [(f"ps1/zeros{i}.bin", stream, crc, size)
                                           for i in range(32)])
    # ... or with headers that lie (each says 1 MB: 4 MB in all would fit)
    liar = raw_zip(tmp_path / "liar.zip", [(f"ps1/zeros{i}.bin", stream, crc, 1 << 20)
                                           for i in range(4)])
    # a zip of zips of zips of 64 MB of zeros: 16 GB three levels down
    level3 = raw_zip(tmp_path / "l3.zip", [("zeros.bin", stream, crc, size)]).read_bytes()
    level2 = zip_bytes({f"z{i}.zip": level3 for i in range(16)})
    level1 = zip_bytes({f"y{i}.zip": level2 for i in range(16)})
    nested = zip_bytes({**honest(), "ps1/data.zip": level1, "ps1/more.zip": flat.read_bytes()})
    only_a_zip = zip_bytes({"ps1.zip": zip_bytes(honest())})  # a zip in a zip: not unpacked
    assert len(flat.read_bytes()) < 3 << 20 and len(nested) < 3 << 20
    students = {"alice": honest(), "flat": flat.read_bytes(), "liar": liar.read_bytes(),
                "nested": nested, "only_a_zip": only_a_zip, "zoe": zip_bytes(honest())}
    course = tmp_path / "course"
    watch = Watch(monkeypatch, scratch_root, course)
    started = time.monotonic()
    found = ingest(class_zip(tmp_path / "class.zip", students), "ps1", course)
    assert time.monotonic() - started < 60
    assert watch.peak_scratch <= budget, watch.peak_scratch
    assert watch.peak_total < budget, watch.peak_total  # scratch + everything collected
    assert watch.students_at_once <= 1  # scratch is deleted after each student
    assert list(scratch_root.iterdir()) == []
    assert disk_usage(course) < copy_limit * len(students)
    assert found["flat"][0].startswith(FAILED) and "16 MB" in found["flat"][0]
    assert found["liar"][0].startswith(FAILED)
    # the nested zip is kept as a file, never unpacked
    assert not any(n.startswith(FAILED) for n in found["nested"])
    assert (course / "submitted" / "nested" / "ps1" / "data.zip").read_bytes() == level1
    assert any("archive inside an archive" in n for n in found["only_a_zip"])
    assert not (course / "submitted" / "only_a_zip" / NOTEBOOK).exists()
    for name in ("alice", "zoe", "nested"):
        assert (course / "submitted" / name / NOTEBOOK).exists(), name


def test_the_budget_holds_across_the_whole_run(tmp_path, scratch_root, monkeypatch):
    run_budget = 20 << 20
    monkeypatch.setattr(archives_module, "MAX_STUDENT_UNPACKED", 8 << 20)
    monkeypatch.setattr(archives_module, "MAX_RUN_UNPACKED", run_budget)
    stream, crc, size = deflated_zeros(6 << 20)
    bomb = raw_zip(tmp_path / "b.zip", [(NOTEBOOK, b"{}", zlib.crc32(b"{}"), 2, 0),
                                        ("ps1/zeros.bin", stream, crc, size)]).read_bytes()
    students = {f"s{i}": bomb for i in range(6)}
    course = tmp_path / "course"
    watch = Watch(monkeypatch, scratch_root, course)
    found = ingest(class_zip(tmp_path / "class.zip", students), "ps1", course)
    assert watch.written <= run_budget, watch.written
    ok = [s for s in students if not any(n.startswith(FAILED) for n in found[s])]
    assert ok == ["s0", "s1", "s2"]  # 3 x 6 MB fit in 20 MB; the others are refused
    assert all("limit of 20 MB" in found[s][0] for s in ("s3", "s4", "s5"))
    assert all((course / "submitted" / s / "ps1").is_dir() for s in students)


def test_the_submission_time_is_the_collections_not_the_students(tmp_path, scratch_root):
    forged = {**honest(), "ps1/timestamp.txt": b"2000-01-01 00:00:00.000000 UTC"}
    course = tmp_path / "course"
    before = datetime.now(UTC)
    found = ingest(class_zip(tmp_path / "class.zip", {"mallory": forged, "alice": honest()}),
                   "ps1", course)
    after = datetime.now(UTC)
    assert not (course / "submitted" / "mallory" / "ps1" / "timestamp.txt").exists()
    assert any("timestamp.txt was not collected" in n for n in found["mallory"])
    for student in ("mallory", "alice"):
        when = datetime.fromisoformat(collection_time(course, "ps1", student))
        assert before <= when <= after, when
    assert collection_time(course, "ps1", "nobody") is None
    # it does not live in the submission, and a later collection replaces it
    time.sleep(0.01)
    ingest(class_zip(tmp_path / "again.zip", {"mallory": forged}), "ps1", course)
    assert datetime.fromisoformat(collection_time(course, "ps1", "mallory")) > after
    assert datetime.fromisoformat(collection_time(course, "ps1", "alice")) <= after
    # and the log is not mistaken for a student's grading record
    assert not list((course / "grading" / "ps1").glob("*.json"))
    # nbgrader parses it
    from nbgrader.utils import parse_utc
    assert parse_utc(collection_time(course, "ps1", "alice")).year == after.year


def test_collection_time_never_reads_the_submission(tmp_path):
    course = tmp_path / "course"
    stamp = course / "submitted" / "mallory" / "ps1" / "timestamp.txt"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("2000-01-01 00:00:00.000000 UTC")
    assert collection_time(course, "ps1", "mallory") is None
    log = course / "grading" / "ps1" / "collected.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('not json\n["a"]\n{"student": "mallory", "time": 5}\n')
    assert collection_time(course, "ps1", "mallory") is None


# --------------------------------------------------------------------------------------
# feedback

NB1 = "01_convolution_1d"
SCRIPT = "<script>alert(1)</script>"
# breaks out of a code span, else plain HTML and a javascript: link
BREAKOUT = f"x` {SCRIPT} [click](javascript:alert(2)) <img src=x onerror=alert(3)> `"
COMMENT = f"{SCRIPT} [click](javascript:alert(2)) <img src=x onerror=alert(3)>"


@pytest.fixture(scope="module")
def autograded(tmp_path_factory):
    """ps1 built, and four students' submissions autograded (without running them)."""
    from autograder.build import build
    from autograder.nbg import base_env, run_nbgrader
    from autograder.submissions import from_release
    course = build(["ps1"], tmp_path_factory.mktemp("feedback") / "course")
    for student in ("alice", "eve", "mallory", "trudy"):
        from_release(course, "ps1", course / "submitted" / student / "ps1", solved=True)
    run = run_nbgrader(["autograde", "ps1", "--force", "--no-execute"], course, 600,
                       course / "autograde.log", env=base_env())
    assert run.ok, run.output[-3000:]
    return course


def edit_autograded(course: Path, student: str, change) -> None:
    import nbformat
    path = course / "autograded" / student / "ps1" / f"{NB1}.ipynb"
    path.chmod(0o644)  # nbgrader leaves them read-only
    notebook = nbformat.read(str(path), as_version=4)
    change(notebook)
    nbformat.write(notebook, str(path))


@pytest.mark.slow
def test_feedback_withholds_a_leaking_student_and_escapes_untrusted_text(autograded, tmp_path):
    import shutil

    import nbformat
    from nbgrader.api import Gradebook

    from autograder.course import COURSE_ID, db_url
    from autograder.feedback import active_content, generate_feedback, withheld_feedback
    from autograder.testcells import graded_cells, hidden_lines
    course = tmp_path / "course"
    shutil.copytree(autograded, course)
    tests = [c for c in graded_cells(course / "source" / "ps1" / f"{NB1}.ipynb")
             if c.kind == "test"]
    secret = hidden_lines(tests[0].source)[0]
    new_output = nbformat.v4.new_output

    # mallory: a hidden test printed by an ordinary cell, which stripping cannot recognise
    edit_autograded(course, "mallory", lambda nb: nb.cells.append(nbformat.v4.new_code_cell(
        "print(open('../source/ps1/01_convolution_1d.ipynb').read())",
        outputs=[new_output("stream", name="stdout", text=f"found: {secret}\n")])))
    # trudy: a notebook nbgrader cannot render (a grade cell the gradebook does not know)
    edit_autograded(course, "trudy", lambda nb: nb.cells.append(nbformat.v4.new_code_cell(
        "x = 1", metadata={"nbgrader": {"grade": True, "grade_id": "forged", "points": 99,
                                        "solution": False, "locked": True,
                                        "schema_version": 3}})))
    # eve: raw HTML with an event handler in her own Markdown answer
    edit_autograded(course, "eve", lambda nb: nb.cells.append(nbformat.v4.new_markdown_cell(
        "My answer <img src=x onerror=alert(5)>")))
    # alice: script in gradebook comments, in a sandbox message, and in outputs
    edit_autograded(course, "alice", lambda nb: nb.cells.append(nbformat.v4.new_code_cell(
        "display(HTML(...))", outputs=[
            new_output("display_data", data={"text/html": "<script>alert(6)</script>",
                                             "text/plain": "<IPython HTML object>"}),
            new_output("display_data", data={"application/javascript": "alert(7)"}),
            new_output("display_data", data={"text/markdown": "[m](javascript:alert(8))"}),
        ])))
    with Gradebook(db_url(course), COURSE_ID) as gb:
        comments = [c for nb in gb.find_submission("ps1", "alice").notebooks
                    for c in nb.comments]
        for comment in comments:
            comment.auto_comment = COMMENT
        gb.db.commit()
    assert comments
    record = {"cells": {t.grade_id: {"notebook": NB1, "points": t.points, "notebook_score":
                                     t.points, "sandbox": {"passed": False, "cases": 2,
                                                           "failed_cases": 1, "score": 0.0,
                                                           "message": BREAKOUT}}
                        for t in tests}, "notebooks": {}}
    (course / "grading" / "ps1").mkdir(parents=True, exist_ok=True)
    (course / "grading" / "ps1" / "alice.json").write_text(json.dumps(record))

    produced = generate_feedback(course, "ps1")

    assert set(produced) == {"alice", "eve", "mallory", "trudy"}
    withheld = withheld_feedback(course, "ps1")
    assert set(withheld) == {"eve", "mallory", "trudy"}, withheld
    assert "hidden tests" in withheld["mallory"]
    assert "no feedback" in withheld["trudy"]
    assert "active content" in withheld["eve"] and "onerror" in withheld["eve"]
    for student in withheld:
        assert produced[student] == [], student
        assert not list((course / "feedback").glob(f"{student}/**/*.html")), student
    # the class goes on: alice's feedback is there, complete, and inert
    files = sorted((course / "feedback" / "alice" / "ps1").glob("*.html"))
    assert [p.name for p in files] == ["01_convolution_1d.html", "02_convolution_2d.html"]
    assert produced["alice"] == files
    text = files[0].read_text(encoding="utf-8")
    body = text[text.index("<body"):]
    assert "<script>alert" not in text and "<script" not in body
    assert 'href="javascript' not in body and "<img src=x" not in body
    assert active_content(text) == []
    assert "alert(6)" not in body and "alert(7)" not in body and "alert(8)" not in body
    # the text is shown, escaped: in the sandbox notes, and in the gradebook comments
    shown = "&lt;script&gt;alert(1)&lt;/script&gt; [click](javascript:alert(2)) &lt;img"
    assert body.count(f"<p>First problem: x` {shown}") == len(tests)
    assert body.count(f"<b>Comments:</b> <p>{shown}") >= 1
    assert "mathjax" in text[:text.index("<body")].lower()  # the template's own scripts stay
    # the real gradebook keeps what was written (only the copy used for feedback is escaped)
    with Gradebook(db_url(course), COURSE_ID) as gb:
        assert {c.auto_comment for nb in gb.find_submission("ps1", "alice").notebooks
                for c in nb.comments} == {COMMENT}


def test_escaping_helpers():
    from nbconvert.filters.markdown import markdown2html

    from autograder.feedback import active_content, md_literal
    rendered = markdown2html(md_literal(BREAKOUT + "\n\n    # indented\n$x<y$ & *b*"))
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered and "<pre" not in rendered
    assert "<h1" not in rendered and "<em>" not in rendered
    page = "<html><head><script>ok()</script></head><body>{}</body></html>"
    assert active_content(page.format("<p>fine <a href='https://x.org'>x</a></p>")) == []
    for attack in ("<script>x()</script>", "<img alt='>' src=x onerror=alert(1)>",
                   "<a href=' jav&#x61;script:alert(1)'>x</a>", "<iframe srcdoc='x'>",
                   "<svg><a xlink:href='javascript:alert(1)'>x</a></svg>",
                   "<object data='data:text/html,x'>"):
        assert active_content(page.format(attack)), attack
