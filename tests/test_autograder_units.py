"""Pieces of the autograder: test-cell parsing, output caps, hidden tests, ingest, config, jail."""

from __future__ import annotations

import base64
import json
import os
import zipfile

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from autograder.course import ASSIGNMENTS, DEFAULT_COURSE, REPO, available_assignments
from autograder.export import _csv_safe
from autograder.ingest import ingest, safe_extract, student_id
from autograder.outputs import (
    MAX_NOTEBOOK_BYTES,
    cap_notebook,
    cap_outputs,
    cap_text,
    strip_hidden_tests,
)
from autograder.package import student_owned
from autograder.student_edition import write_student_edition
from autograder.testcells import CheckCall, check_calls, graded_cells, strip_hidden

TEST_CELL = 'check("signal.convolve")\n### BEGIN HIDDEN TESTS\ncheck("signal.convolve", ' \
            'seed=4242, count=60)\n### END HIDDEN TESTS'


def test_check_calls_are_read_from_visible_and_hidden_code():
    assert check_calls(TEST_CELL) == [CheckCall("signal.convolve"),
                                      CheckCall("signal.convolve", 4242, 60, hidden=True)]
    assert check_calls("%time check('signal.pad2d', 3)\n") == [CheckCall("signal.pad2d", 3)]
    with pytest.raises(ValueError, match="literal"):
        check_calls("name = 'signal.pad2d'\ncheck(name)")


def test_every_test_cell_of_every_built_notebook_is_sandboxed():
    for assignment in available_assignments():
        for path in assignment.notebook_paths():
            cells = [c for c in graded_cells(path) if c.kind == "test"]
            assert cells and all(c.sandboxed for c in cells), path.name
            assert all(any(call.hidden for call in c.calls) for c in cells), path.name


def test_hidden_tests_are_stripped_from_code_and_outputs():
    assert strip_hidden(TEST_CELL) == 'check("signal.convolve")'
    cell = nbformat.v4.new_code_cell(TEST_CELL, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="✔ convolve: 3 cases agree\n"),
        nbformat.v4.new_output("error", ename="AssertionError",
                               evalue="convolve is wrong on random case 7 (in1=[1]):\n  "
                                      "values differ\n  hint: flip",
                               traceback=["\x1b[0;31mAssertionError\x1b[0m",
                                          '----> 3 \x1b[43mcheck\x1b[39m("signal.convolve", '
                                          'seed=4242, count=60)', "values differ"]),
    ])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    strip_hidden_tests(notebook)
    text = json.dumps(notebook)
    assert "4242" not in text and "HIDDEN" not in text and "random case 7" not in text
    assert "a hidden test failed" in text and "hint: flip" in text
    assert 'check(\\"signal.convolve\\")' in text


def test_outputs_are_capped_text_images_and_totals():
    assert len(cap_text("x" * 10_000_000)) < 30_000
    assert cap_text("a\n" * 5000).count("\n") < 300
    big_png = base64.b64encode(os.urandom(1_000_000)).decode()
    small_png = base64.b64encode(os.urandom(1000)).decode()
    outputs = [nbformat.v4.new_output("stream", name="stdout", text="spam " * 20_000_000)]
    outputs += [nbformat.v4.new_output("display_data", data={"image/png": big_png,
                                                               "text/plain": "<Figure>"})]
    outputs += [nbformat.v4.new_output("display_data", data={"image/png": small_png})
                for _ in range(10)]
    capped = cap_outputs(outputs)
    assert len(json.dumps(capped)) < 700_000
    assert "removed by the autograder" in json.dumps(capped)
    assert sum("image/png" in o.get("data", {}) for o in capped) <= 4
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "", outputs=[nbformat.v4.new_output("stream", name="stdout", text="y" * 20_000)] * 30)
        for _ in range(100)])
    cap_notebook(notebook)
    assert len(nbformat.writes(notebook)) < MAX_NOTEBOOK_BYTES + 200_000


def test_student_ids_from_lms_folder_names():
    assert student_id("Ada Lovelace_1234_assignsubmission_file_") == "Ada_Lovelace_1234"
    assert student_id("../../etc") == "etc"
    assert student_id("bob.zip") == "bob"
    assert student_id("...") == "student"


def test_unsafe_zip_members_are_skipped(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
        zf.writestr("/abs.txt", "x")
        link = zipfile.ZipInfo("link")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("ok/file.txt", "fine")
    notes = safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "ok" / "file.txt").read_text() == "fine"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "link").exists()
    assert len(notes) == 3


def test_ingest_understands_folders_lms_exports_and_nested_zips(tmp_path):
    source = tmp_path / "export" / "course export"
    (source / "alice" / "ps1" / "cnnlab").mkdir(parents=True)
    (source / "alice" / "ps1" / "01_convolution_1d.ipynb").write_text("{}")
    moodle = source / "Bob Builder_77_assignsubmission_file_"
    (moodle / "whatever" / "cnnlab").mkdir(parents=True)
    (moodle / "whatever" / "02_convolution_2d.ipynb").write_text("{}")
    (moodle / "whatever" / "__pycache__").mkdir()
    (moodle / "whatever" / "__pycache__" / "x.pyc").write_text("junk")
    inner = tmp_path / "carol.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("ps1/01_convolution_1d.ipynb", "{}")
    carol = source / "carol"
    carol.mkdir()
    (carol / "submission.zip").write_bytes(inner.read_bytes())
    (source / "dave").mkdir()
    archive = tmp_path / "lms.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "export").rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "export"))
    course = tmp_path / "course"
    found = ingest(archive, "ps1", course)
    assert set(found) == {"alice", "Bob_Builder_77", "carol", "dave"}
    submitted = course / "submitted"
    assert (submitted / "alice" / "ps1" / "01_convolution_1d.ipynb").exists()
    assert (submitted / "Bob_Builder_77" / "ps1" / "02_convolution_2d.ipynb").exists()
    assert not (submitted / "Bob_Builder_77" / "ps1" / "__pycache__").exists()
    assert (submitted / "carol" / "ps1" / "01_convolution_1d.ipynb").exists()
    assert list((submitted / "dave" / "ps1").iterdir()) == [] and found["dave"]


def test_nbgrader_config_keeps_the_students_exercise_files(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "ps2").mkdir(parents=True)
    (course / "nbgrader_config.py").write_bytes((DEFAULT_COURSE / "nbgrader_config.py")
                                                .read_bytes())
    edition = write_student_edition(course / "source" / "ps2", "ps2")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    owned = sorted(p.relative_to(course / "source" / "ps2").as_posix()
                   for p in edition.rglob("*.py") if student_owned(p.read_text()))
    assert config.Autograde.exclude_overwriting == {"ps2": owned}
    assert "cnnlab/pooling.py" in owned and "cnnlab/signal.py" not in owned  # ps1's is given
    assert not any(name.startswith("cnnlab/checks") for name in owned)
    assert config.OverwriteCells.add_missing_cells is True
    assert config.ExecutePreprocessor.timeout == config.Execute.timeout > 0
    assert config.CourseDirectory.db_url.startswith(f"sqlite:///{course}/gradebook.db")


def test_csv_cells_cannot_become_formulas():
    assert _csv_safe("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert _csv_safe("-3.5") == "-3.5" and _csv_safe("a\nb") == "a b"


def test_the_assignment_table_covers_the_notebooks():
    prefixes = [p for a in ASSIGNMENTS for p in a.notebook_prefixes]
    assert len(prefixes) == len(set(prefixes))
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert path.name[:2] in prefixes, path.name




def test_a_record_is_written_whole(tmp_path):
    from autograder.results import StudentResult, load_results

    StudentResult("ada", "ps1", score=3.0, run="r1").save(tmp_path / "grading" / "ps1" / "ada.json")
    assert not list((tmp_path / "grading" / "ps1").glob("*.partial"))
    loaded = load_results(tmp_path, "ps1")
    assert set(loaded) == {"ada"} and loaded["ada"].run == "r1" and loaded["ada"].score == 3.0


def test_worker_files_stay_in_their_folder(tmp_path):
    from autograder.notebook_runs import safe_relative, write_autograded

    write_autograded(tmp_path, "ps1", "ada", {"01.ipynb": b"{}", "cnnlab/signal.py": b"x"})
    assert (tmp_path / "autograded" / "ada" / "ps1" / "cnnlab" / "signal.py").read_bytes() == b"x"
    for name in ("../bob/ps1/01.ipynb", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="name: expected a relative path"):
            safe_relative(name)


def test_resume_needs_a_run_to_resume(tmp_path):
    from autograder.grading import Options, grade

    with pytest.raises(ValueError, match="resume: no grading run of ps1"):
        grade("ps1", tmp_path, options=Options(resume=True, quiet=True,
                                               unsafe_no_isolation=True))
    with pytest.raises(ValueError, match="submissions: --resume grades what"):
        grade("ps1", tmp_path, tmp_path / "class",
              options=Options(resume=True, quiet=True, unsafe_no_isolation=True))


def test_a_cluster_task_carries_one_submission_and_the_course_without_students(tmp_path):
    import io
    import tarfile

    from autograder.cluster import course_bundle, reference_fingerprint, submission_files

    folder = tmp_path / "submitted" / "ada" / "ps1"
    (folder / "cnnlab" / "__pycache__").mkdir(parents=True)
    (folder / "cnnlab" / "signal.py").write_text("x = 1\n")
    (folder / "cnnlab" / "__pycache__" / "signal.pyc").write_bytes(b"\0")
    (folder / "01.ipynb").write_text("{}")
    assert submission_files(folder) == {"01.ipynb": b"{}", "cnnlab/signal.py": b"x = 1\n"}

    class Ctx:
        assignment = "ps1"
        course = tmp_path
        source = tmp_path / "source" / "ps1"
        template_db = tmp_path / "template.db"
    (Ctx.source / "cnnlab").mkdir(parents=True)
    (Ctx.source / "01.ipynb").write_text("{}")
    (Ctx.source / "cnnlab" / "signal.py").write_text("reference = 1\n")
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    Ctx.template_db.write_bytes(b"sqlite")
    with tarfile.open(fileobj=io.BytesIO(course_bundle(Ctx)), mode="r:gz") as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert names == {"source/ps1/01.ipynb", "source/ps1/cnnlab/signal.py",
                     "nbgrader_config.py", "template.db"}
    assert len(reference_fingerprint()) == 16


def test_grading_kernels_get_60_dpi_and_a_font_list_they_do_not_rebuild(tmp_path):
    import subprocess
    import sys

    from autograder.kernel_jail import write_matplotlib_config
    folder = write_matplotlib_config(tmp_path / "matplotlib")
    fonts = list(folder.glob("fontlist-*.json"))
    assert (folder / "matplotlibrc").is_file() and len(fonts) == 1
    before = fonts[0].stat().st_mtime_ns
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPL")}
    env["MPLCONFIGDIR"] = str(folder)
    done = subprocess.run([sys.executable, "-c", "import matplotlib, matplotlib.font_manager; "
                           "print(matplotlib.rcParams['figure.dpi'])"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 60
    assert fonts[0].stat().st_mtime_ns == before, "the kernel rebuilt the font list"


def test_the_nbgrader_command_skips_rfc3987_syntax_and_still_validates_notebooks():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-I", "-c", (
        "import sys, autograder.nbgrader_command, nbformat\n"
        "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')]))\n"
        "print(sys.modules.get('rfc3987_syntax', 'missing'))\n")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


@pytest.mark.parametrize("where", ["forked from the server", "a fresh interpreter"])
def test_an_nbgrader_command_has_its_folder_env_and_log(tmp_path, monkeypatch, where):
    from autograder import nbg
    from autograder.nbg import base_env, run_nbgrader

    if where == "a fresh interpreter":  # as in a daemonic process (a Dask worker)
        monkeypatch.setattr(nbg, "_forkserver", lambda: None)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n", encoding="utf-8")
    log = tmp_path / "logs" / "list.log"
    run = run_nbgrader(["--version"], tmp_path, 120, log, env=base_env({"CNNLAB_MARK": "1"}))
    assert run.ok and not run.timed_out, run.output
    import nbgrader
    assert nbgrader.__version__ in log.read_text(encoding="utf-8")


def test_an_nbgrader_command_past_its_time_is_killed_with_its_process_group(tmp_path):
    from autograder.nbg import base_env, run_nbgrader

    config = tmp_path / "nbgrader_config.py"  # nbgrader loads it: a command that hangs
    config.write_text("import subprocess, time\n"
                      "subprocess.Popen(['sleep', '300'])\n"
                      "time.sleep(300)\n", encoding="utf-8")
    run = run_nbgrader(["list"], tmp_path, 3, tmp_path / "hang.log", env=base_env())
    assert run.timed_out and not run.ok and run.seconds < 60
    import subprocess
    left = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the command's child outlived it"


def test_a_script_without_a_main_guard_is_not_run_again_by_the_nbgrader_fork(tmp_path):
    """multiprocessing runs the parent's main script again in a child unless told not to:
    an instructor's script that calls the autograder would grade again from nbgrader's
    process."""
    import subprocess
    import sys

    from autograder.course import REPO
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "from autograder.nbg import base_env, run_nbgrader\n"
        "print('the script ran', flush=True)\n"
        f"folder = Path({str(tmp_path)!r})\n"
        "(folder / 'nbgrader_config.py').write_text('c = get_config()\\n')\n"
        "run = run_nbgrader(['--version'], folder, 120, folder / 'log.txt', env=base_env())\n"
        "print('ok' if run.ok else 'failed', flush=True)\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.splitlines() == ["the script ran", "ok"], done.stdout + done.stderr
    assert "the script ran" not in (tmp_path / "log.txt").read_text(encoding="utf-8")


def test_nbgrader_commands_forked_from_many_threads_at_once_all_succeed(tmp_path):
    """Grading workers are threads, each forking its nbgrader commands from the one server
    at the same time as the others: every command succeeds, with its own log. (The race
    that nbg._CHILDREN closes is too narrow to be hit on purpose; this is the load it
    must hold under.)"""
    from concurrent.futures import ThreadPoolExecutor

    from autograder.nbg import base_env, run_nbgrader

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n", encoding="utf-8")

    def command(i):
        return run_nbgrader(["--version"], tmp_path, 120, tmp_path / f"{i}.log",
                            env=base_env())

    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(command, range(32)))
    assert [r.returncode for r in runs] == [0] * 32, [r.output[-300:] for r in runs]
    import nbgrader
    assert all(nbgrader.__version__ in (tmp_path / f"{i}.log").read_text(encoding="utf-8")
               for i in range(32))
