"""Feedback HTML without hidden tests, with bounded outputs, and with nothing active in it.

``nbgrader generate_feedback`` renders the autograded notebooks as they are,
hidden tests included. Here it renders copies instead: hidden-test code (and
any output that shows it) taken out, outputs capped and reduced to inert kinds
(text and images: no HTML, JavaScript or Markdown outputs), and a note after
each test cell whose score came out differently in the sandbox, or that failed
there. Scores and comments come from a copy of the gradebook in which every
automatic comment (written by a notebook run, i.e. by student code) is escaped,
because nbgrader's template renders comments as Markdown, raw HTML included.

Each student's HTML is then checked (size, hidden-test text, scripts, event
handlers, ``javascript:`` links). A student whose feedback fails a check, or
whose notebooks nbgrader could not render, gets no feedback at all: the files
are deleted, the reason is recorded (:func:`withheld_feedback`), and the rest of
the class gets theirs.
"""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import sqlite3
import tempfile
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from autograder.build import notebook_names
from autograder.course import db_path
from autograder.nbg import base_env, run_nbgrader
from autograder.outputs import cap_notebook, strip_hidden_tests
from autograder.results import StudentResult, load_results
from autograder.testcells import assignment_cells, hidden_lines

MAX_FEEDBACK_BYTES = 8_000_000
# Output kinds nbconvert renders inertly (escaped text, <img> of base64 data, MathJax in
# its Safe mode); text/html, text/markdown, image/svg+xml, JavaScript and widgets are not.
INERT_OUTPUTS = {"text/plain", "image/png", "image/jpeg", "image/gif", "text/latex"}
ACTIVE_ELEMENTS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet",
                   "base", "meta", "link", "form", "portal"}
WITHHELD_LOG = "feedback-withheld.json"  # in grading/<ps>/logs/


def md_literal(text: str) -> str:
    """``text`` as Markdown that renders to exactly that text: no HTML, links or markup.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it
    for all of them), so ``<script>`` becomes ``&lt;script&gt;`` and
    ``[x](javascript:…)`` stays text. Lines are stripped (no code blocks) and
    blank lines dropped (one paragraph).
    """
    lines = [line.strip() for line in str(text).splitlines()]
    escaped = [re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", line) for line in lines if line]
    return "  \n".join(escaped)


def _note_cell(text: str):
    """A note from the autograder; ``text`` is Markdown the caller made safe."""
    return nbformat.v4.new_markdown_cell("> **Autograder:** " + text.replace("\n", "\n> "))


def inert_outputs(notebook) -> None:
    """Keep only output kinds that render as inert text or images."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data")
            if not isinstance(data, dict):
                continue
            dropped = sorted(mime for mime in data if mime not in INERT_OUTPUTS)
            for mime in dropped:
                del data[mime]
            if dropped and not data:
                data["text/plain"] = f"[{', '.join(dropped)} output: not shown in the feedback]"
            output.get("metadata", {}).clear()


def prepare(notebook, result: StudentResult | None) -> None:
    """Strip hidden tests, cap outputs, and add the sandbox's verdict after test cells."""
    strip_hidden_tests(notebook)
    cap_notebook(notebook)
    inert_outputs(notebook)
    if not result:
        return
    cells = []
    for cell in notebook.cells:
        cells.append(cell)
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        entry = result.cells.get(grade_id) if grade_id else None
        sandbox = entry.sandbox if entry else None
        if sandbox is None:
            continue
        if not sandbox.passed:
            message = str(sandbox.message or "").split(" on random case")[0]
            cells.append(_note_cell(
                "your package was tested again, outside this notebook, on the visible and the "
                f"hidden cases: **failed** ({int(sandbox.failed_cases)} of "
                f"{int(sandbox.cases)} cases), so this test scores 0.\n\nFirst problem: "
                + md_literal(message[:400])))
        elif entry.notebook_score is not None and entry.notebook_score != sandbox.score:
            cells.append(_note_cell("your package passed every case of this test when run "
                                    "outside the notebook, so it scores full marks."))
    notebook.cells = cells


def placeholder(name: str, reason: str, result: StudentResult | None):
    lines = [f"# {md_literal(name)}", "",
             f"This notebook could not be graded: {md_literal(reason)}", ""]
    for grade_id, entry in sorted((result.cells if result else {}).items()):
        if entry.sandbox is not None:
            verdict = "passed" if entry.sandbox.passed else "failed"
            lines.append(f"* {md_literal(grade_id)}: {verdict} when your package was tested "
                         f"({float(entry.sandbox.score):g}/{float(entry.points):g})")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n".join(lines))])


def escaped_gradebook(course: Path, dest: Path) -> Path:
    """A copy of the gradebook whose automatic comments render as plain text.

    Automatic comments come from notebook runs, where student code ran; manual
    comments are the instructor's and keep their Markdown.
    """
    uri = db_path(course).resolve().as_uri() + "?mode=ro"  # never creates or alters it
    with closing(sqlite3.connect(uri, uri=True)) as source, \
            closing(sqlite3.connect(dest)) as copy:
        source.backup(copy)
        rows = copy.execute("SELECT id, auto_comment FROM comment "
                            "WHERE auto_comment IS NOT NULL").fetchall()
        copy.executemany("UPDATE comment SET auto_comment = ? WHERE id = ?",
                         [(md_literal(text), key) for key, text in rows])
        copy.commit()
    return dest


def _prepare_student(course: Path, assignment: str, student: str, notebooks: list[str],
                     result: StudentResult | None, dest: Path) -> None:
    """Write the copies of one student's notebooks that nbgrader will render."""
    dest.mkdir(parents=True)
    autograded = course / "autograded" / student / assignment
    for nb in notebooks:
        source = autograded / f"{nb}.ipynb"
        if source.exists():
            try:
                notebook = nbformat.read(str(source), as_version=4)
            except Exception as exc:
                notebook = placeholder(nb, f"it cannot be read ({exc})", result)
            else:
                prepare(notebook, result)
        else:
            run = (result.notebooks if result else {}).get(nb, {})
            notebook = placeholder(nb, run.get("reason") or "it was not autograded", result)
        nbformat.write(notebook, str(dest / f"{nb}.ipynb"))


def generate_feedback(course: Path, assignment: str, students: list[str] | None = None,
                      timeout: float = 1800) -> dict[str, list[Path]]:
    """Write ``feedback/<student>/<assignment>/*.html``; return the files per student.

    A student whose feedback was withheld maps to ``[]``; why is in
    :func:`withheld_feedback`.
    """
    course = Path(course).resolve()
    results = load_results(course, assignment)
    notebooks = notebook_names(course, assignment)
    secret = {line for cell in assignment_cells(course / "source" / assignment, notebooks)
              for line in hidden_lines(cell.source)}
    autograded = course / "autograded"
    chosen = sorted(p.parent.name for p in autograded.glob(f"*/{assignment}") if p.is_dir())
    chosen = [s for s in chosen if students is None or s in students]
    withheld: dict[str, str] = {}
    nbgrader_errors = ""
    with tempfile.TemporaryDirectory(prefix="cnnlab-feedback-") as scratch_name:
        scratch = Path(scratch_name)
        for student in chosen:
            _remove(course, assignment, student)
            try:
                _prepare_student(course, assignment, student, notebooks, results.get(student),
                                 scratch / "autograded" / student / assignment)
            except Exception as exc:  # this student's notebooks only
                withheld[student] = f"its notebooks could not be prepared: {exc}"
                shutil.rmtree(scratch / "autograded" / student, ignore_errors=True)
        if set(chosen) - set(withheld):
            gradebook = escaped_gradebook(course, scratch / "gradebook.db")
            args = ["generate_feedback", assignment, "--force",
                    f"--CourseDirectory.autograded_directory={scratch / 'autograded'}",
                    f"--CourseDirectory.db_url=sqlite:///{gradebook}"]
            run = run_nbgrader(args, course, timeout, scratch / "feedback.log", env=base_env())
            if not run.ok:
                nbgrader_errors = "\n".join(run.error_lines())
                print("warning: nbgrader generate_feedback reported errors:\n" + nbgrader_errors)
    produced: dict[str, list[Path]] = {}
    for student in chosen:
        if student not in withheld:
            try:
                produced[student] = check_student(course, assignment, student, notebooks,
                                                  secret, nbgrader_errors)
                continue
            except Exception as exc:
                withheld[student] = str(exc)
        _remove(course, assignment, student)
        produced[student] = []
        print(f"warning: feedback for {student} withheld: {withheld[student]}")
    _log_withheld(course, assignment, chosen, withheld)
    return produced


def _remove(course: Path, assignment: str, student: str) -> None:
    shutil.rmtree(course / "feedback" / student / assignment, ignore_errors=True)


def check_student(course: Path, assignment: str, student: str, notebooks: list[str],
                  secret: set[str], nbgrader_errors: str = "") -> list[Path]:
    """The student's feedback files, each checked; raises if any is missing or unsafe."""
    folder = course / "feedback" / student / assignment
    files = []
    for nb in notebooks:
        html = folder / f"{nb}.html"
        if not html.is_file():
            raise RuntimeError(f"nbgrader produced no feedback for {nb}"
                               + (f" ({nbgrader_errors[-500:]})" if nbgrader_errors else ""))
        check_feedback(html, secret)
        files.append(html)
    return files


def check_feedback(html: Path, secret: set[str]) -> None:
    """Refuse feedback that is too large, shows a hidden test, or holds active content."""
    size = html.stat().st_size
    if size > MAX_FEEDBACK_BYTES:
        raise RuntimeError(f"{html.name} is {size:,} bytes (limit {MAX_FEEDBACK_BYTES:,})")
    text = html.read_text(encoding="utf-8", errors="replace")
    plain = html_module.unescape(re.sub(r"<[^>]+>", "", text))
    leaked = [line for line in secret if line in plain]
    if "HIDDEN TESTS" in plain or leaked:
        raise RuntimeError(f"{html.name} showed hidden tests")
    active = active_content(text)
    if active:
        raise RuntimeError(f"{html.name} holds active content: {'; '.join(active[:3])}")


class _ActiveContent(HTMLParser):
    """Scripts, frames, event handlers and script URLs in a document's body."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_body, self.found = False, []

    def handle_starttag(self, tag, attrs):
        self._check(tag, attrs)

    def handle_startendtag(self, tag, attrs):
        self._check(tag, attrs)

    def _check(self, tag, attrs):
        if tag == "body":
            self.in_body = True
        if not self.in_body:
            return
        if tag in ACTIVE_ELEMENTS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            squeezed = re.sub(r"[\x00-\x20]+", "", (value or "").lower())
            if name.startswith("on") or name == "srcdoc" or any(
                    scheme in squeezed for scheme in ("javascript:", "vbscript:", "data:text")):
                self.found.append(f"<{tag} {name}=...>")


def active_content(text: str) -> list[str]:
    """What in an HTML document's body could run code when opened (the template's head can)."""
    parser = _ActiveContent()
    parser.feed(text)
    parser.close()
    return parser.found


def _log_path(course: Path, assignment: str) -> Path:
    # logs/: grading/<ps>/*.json are the students' grading records
    return Path(course) / "grading" / assignment / "logs" / WITHHELD_LOG


def _log_withheld(course: Path, assignment: str, chosen: list[str],
                  withheld: dict[str, str]) -> None:
    log = _log_path(course, assignment)
    previous = withheld_feedback(course, assignment)
    merged = {s: why for s, why in previous.items() if s not in chosen} | withheld
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps(merged, indent=1, sort_keys=True), encoding="utf-8")


def withheld_feedback(course: Path, assignment: str) -> dict[str, str]:
    """{student: why} for every student whose feedback was withheld at its last generation."""
    try:
        found = json.loads(_log_path(course, assignment).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
