"""Run a notebook's tests and report per test: ``check`` and ``grade``.

Both run the notebook in a fresh Jupyter kernel (driven with jupyter_client,
the layer nbclient is built on), one cell at a time, so that a cell that
fails, raises or runs too long is recorded and the following cells still run:

- each autograded test cell (``grade: true``) is one test: it passes if it
  runs without an exception; its points are all or nothing;
- a cell that runs longer than ``timeout`` seconds is interrupted and
  reported "timed out after S s"; if the kernel does not come back (or
  dies), the remaining cells are reported as not run;
- a failing cell that is not a test is listed under ``errors``, and each
  later test that fails mentions it (its NameError is usually a symptom);
- the feedback of a failed test is the exception's type and message
  (``assert_vjp_correct`` puts the tape entry, the input and the worst
  element there), where it was raised, and for a bare ``assert`` its line.

``grade`` additionally takes hidden tests from a directory: ``DIR/<grade_id>.py``
runs in place of the notebook's cell with that grade_id (in the notebook's
kernel, after the student's code above it), and its ``# points: N`` line
gives the points. Hidden tests whose cell the student deleted run at the end.
Or it takes the instructor's notebook (``source``): its tests replace the
student's and its locked cells are restored. Either way only the
instructor's tests count.

Every test runs *sealed* (:mod:`tapegrad.coursework.sealed`): the checkers
it calls are fresh objects bound just before it, an integrity check fails it
if what they rely on was replaced ("the checking code was modified"), and
the gradient checks are judged in the grader's process.
"""
from __future__ import annotations

import ast
import json
import os
import queue
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import notebook as nbmod

__all__ = ["TestResult", "Report", "run_tests", "check", "grade", "load_hidden_tests",
           "hidden_from_source"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_LOC = re.compile(r"Cell In\s*\[(\d+)\],\s*line (\d+)")
_ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")
_IPYKERNEL = re.compile(r"ipykernel_\d+")
_POINTS = re.compile(r"^#\s*points\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*$", re.M)
MAX_FEEDBACK = 2000
GRADER_CODE_TIMEOUT = 120  # seconds for the grader's own cells (set-up, each test's prelude)


@dataclass
class TestResult:
    """One graded cell: ``grade_id``, ``points`` earned, ``max_points``,
    ``passed`` (None for a manually graded answer) and ``feedback``.

    >>> from tapegrad.coursework import TestResult
    >>> TestResult("mul_vjp_test", 2, 2, True, "passed").to_dict()["points"]
    2
    """

    grade_id: str
    points: float
    max_points: float
    passed: bool | None
    feedback: str

    def to_dict(self) -> dict:
        return {"grade_id": self.grade_id, "points": self.points, "max_points": self.max_points,
                "passed": self.passed, "feedback": self.feedback}


@dataclass
class Report:
    """The outcome of running a notebook's tests.

    ``tests`` (TestResult, in notebook order), ``errors`` (failures of cells
    that are not tests: ``{"cell": index, "error": text}``), ``score`` and
    ``max_score`` (autograded points), ``manual_points`` (points left to a
    person). ``to_json()`` is byte-stable: sorted keys, no paths or times.

    >>> from tapegrad.coursework import Report, TestResult
    >>> rep = Report("hw.ipynb", [TestResult("a", 2, 2, True, "passed"),
    ...                           TestResult("b", 0, 3, False, "ValueError: no")])
    >>> rep.score, rep.max_score, rep.ok
    (2, 5, False)
    >>> print(rep)
    hw.ipynb: 1 of 2 tests passed, 2/5 points
      PASS    2/2   a
      FAIL    0/3   b
            ValueError: no
    """

    notebook: str
    tests: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def auto(self) -> list:
        return [t for t in self.tests if t.passed is not None]

    @property
    def score(self):
        return _num(sum(t.points for t in self.auto))

    @property
    def max_score(self):
        return _num(sum(t.max_points for t in self.auto))

    @property
    def manual_points(self):
        return _num(sum(t.max_points for t in self.tests if t.passed is None))

    @property
    def ok(self) -> bool:
        """True when every autograded test passed."""
        return all(t.passed for t in self.auto)

    def to_dict(self) -> dict:
        return {"notebook": self.notebook, "tests": [t.to_dict() for t in self.tests],
                "errors": list(self.errors), "score": self.score, "max_score": self.max_score,
                "manual_points": self.manual_points,
                "passed": sum(1 for t in self.auto if t.passed), "failed": sum(1 for t in self.auto if not t.passed)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def __str__(self) -> str:
        n_pass = sum(1 for t in self.auto if t.passed)
        head = (f"{self.notebook}: {n_pass} of {len(self.auto)} tests passed, "
                f"{_fmt(self.score)}/{_fmt(self.max_score)} points")
        if self.manual_points:
            head += f" (+ {_fmt(self.manual_points)} graded by hand)"
        lines = [head]
        for t in self.tests:
            if t.passed is None:
                lines.append(f"  MANUAL   -/{_fmt(t.max_points):<3} {t.grade_id}: {t.feedback}")
                continue
            mark = "PASS" if t.passed else "FAIL"
            lines.append(f"  {mark}  {_fmt(t.points):>3}/{_fmt(t.max_points):<3} {t.grade_id}")
            if not t.passed:
                lines += ["        " + line for line in t.feedback.split("\n")]
        if self.errors:
            lines.append("cells that are not tests and failed:")
            lines += [f"  cell {e['cell']}: {e['error']}" for e in self.errors]
        return "\n".join(lines)


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 6)


def _fmt(x) -> str:
    return str(_num(x))


# ---------------------------------------------------------------------------
# running cells
# ---------------------------------------------------------------------------

def _clean(text: str) -> str:
    text = _ANSI.sub("", text)
    text = _ADDR.sub("0x...", text)
    return _IPYKERNEL.sub("ipykernel", text)


#: the longest first line of feedback: ``nbgrader validate`` keeps about 90 characters
FIRST_LINE = 89


def _fold(text: str, limit: int = FIRST_LINE) -> str:
    """Break a first line longer than ``limit`` before its last ``" ("``
    (a detail in parentheses, the ``(raised at ...)`` place) or after its
    last ``"; "`` that leaves the start short (the library's and the
    student's own messages: the grader's checks write a short first line
    themselves), so that what nbgrader keeps is the useful part. Only the
    space at the break becomes a newline.

    >>> from tapegrad.coursework.grade import _fold
    >>> print(_fold("ValueError: matmul: shapes (3, 5) and (4, 5) are not aligned: 5 (dim 1) "
    ...             "!= 4 (dim 0) (raised at In [18], line 4)"))
    ValueError: matmul: shapes (3, 5) and (4, 5) are not aligned: 5 (dim 1) != 4 (dim 0)
    (raised at In [18], line 4)
    """
    first, sep, rest = text.partition("\n")
    out = []
    while len(first) > limit:
        cut = max(first.rfind(m, 0, limit) for m in (" (", "; "))
        if cut < 24:  # no break that keeps a useful start: leave the line whole
            break
        head, tail = first[:cut + (1 if first[cut] == ";" else 0)], first[cut:].lstrip("; ")
        out.append(head)
        first = tail
    out.append(first)
    return "\n".join(out) + sep + rest


def _error_feedback(out) -> str:
    """``"ValueError: ... (raised at In [7], line 3)"`` from an error output."""
    ename, evalue = out.get("ename", "Error"), _clean(str(out.get("evalue", "")))
    tb = [_clean(t) for t in out.get("traceback", [])]
    text = f"{ename}: {evalue}" if evalue else ename
    flat = "\n".join(tb)
    locs = _CELL_LOC.findall(flat)
    if ename in ("AssertionError", "CheckError") and not evalue:
        arrows = [ln.split("---->", 1)[1].strip() for ln in flat.split("\n") if "---->" in ln]
        if arrows:
            code = re.sub(r"^\d+\s*", "", arrows[-1])
            text += f": failed: {code}"
    if locs and ename not in ("CheckError",):
        text += f" (raised at In [{locs[-1][0]}], line {locs[-1][1]})"
    text = _fold(text)
    if len(text) > MAX_FEEDBACK:
        text = text[:MAX_FEEDBACK] + " [...]"
    return text


class _Kernel:
    """A Jupyter kernel that runs cells one at a time, each with a timeout.

    jupyter_client's blocking client is used directly (nbclient is built on
    it): a cell's outcome is read from its execute_reply on the shell
    channel, matched by message id, so a cell interrupted after a timeout
    can never lend its outputs to the next one.
    """

    INTERRUPT_WAIT = 10  # seconds for an interrupted cell to stop

    def __init__(self, cwd: str, timeout: float, env: dict, kernel_name: str,
                 time_limit: float | None = None):
        self.cwd, self.timeout, self.env, self.kernel_name = cwd, timeout, env, kernel_name
        self.time_limit = time_limit
        self.deadline = None
        self.km = self.kc = None
        self.dead = None  # why the kernel cannot run more cells
        self.stderr = ""  # what the last cell run wrote to stderr

    # A kernel that dies while starting is started again, up to this many
    # times in all.  Kernels started at the same moment (``grade_all`` with
    # ``jobs`` > 1, or two graders on one machine) can be handed the same
    # free port -- jupyter_client finds ports by binding to port 0 and
    # closing again -- and the loser dies before it answers kernel_info.
    # Seen once in CI: a whole honest notebook graded 0 ("Kernel died
    # before replying to kernel_info").  A kernel that cannot start at all
    # still fails, after the last attempt.
    START_ATTEMPTS = 3

    def __enter__(self):
        from jupyter_client import manager
        for attempt in range(1, self.START_ATTEMPTS + 1):
            try:
                # the kernel's own stderr (start-up warnings) would only clutter the output
                self.km, self.kc = manager.start_new_kernel(
                    kernel_name=self.kernel_name, cwd=self.cwd, env=self.env,
                    stderr=subprocess.DEVNULL, startup_timeout=120)
                break
            except RuntimeError:  # start_new_kernel has shut the dead kernel down
                if attempt == self.START_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
        if self.time_limit is not None:
            self.deadline = time.monotonic() + self.time_limit
        return self

    def __exit__(self, *exc):
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001  (a dead kernel may not shut down cleanly)
            pass
        return False

    @property
    def pid(self):
        try:
            return self.km.provisioner.process.pid
        except AttributeError:
            return None

    def _reply(self, msg_id: str, timeout: float):
        """The execute_reply of msg_id, or None after ``timeout`` seconds;
        raises _Dead if the kernel dies meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 1.0))
            except queue.Empty:
                if not self.km.is_alive():
                    raise _Dead() from None
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg

    def _collect_stderr(self, msg_id: str, wait: float = 5.0) -> str:
        """What the cell msg_id wrote to stderr: its iopub stream messages,
        read until the kernel reports that cell idle (the outputs come before
        that) or ``wait`` seconds pass; other messages are dropped."""
        parts, deadline = [], time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "".join(parts)
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            c = msg.get("content", {})
            if msg.get("msg_type") == "stream" and c.get("name") == "stderr":
                parts.append(c.get("text", ""))
            elif msg.get("msg_type") == "status" and c.get("execution_state") == "idle":
                return "".join(parts)

    def _drain(self):
        try:
            while True:
                self.kc.get_iopub_msg(timeout=0)
        except queue.Empty:
            pass

    def run(self, source: str, user_expressions: dict | None = None,
            silent: bool = False, timeout: float | None = None) -> tuple:
        """("ok" | "error" | "timeout" | "dead", feedback, user_expressions)."""
        if self.dead:
            return "dead", f"not run: {self.dead}", {}
        timeout, limit_hit = timeout or self.timeout, False
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.dead = f"the notebook's time limit of {_fmt(self.time_limit)} s was reached"
                return "dead", f"not run: {self.dead}", {}
            if left < timeout:
                timeout, limit_hit = left, True
        try:
            msg_id = self.kc.execute(source, silent=silent, store_history=not silent,
                                     user_expressions=user_expressions or {},
                                     allow_stdin=False, stop_on_error=False)
            reply = self._reply(msg_id, timeout)
            if reply is None:
                self.km.interrupt_kernel()
                if self._reply(msg_id, self.INTERRUPT_WAIT) is None:
                    self.dead = "the kernel did not stop after a timeout"
                self._drain()
                if limit_hit:
                    self.dead = (f"the notebook's time limit of {_fmt(self.time_limit)} s "
                                 f"was reached")
                    return "timeout", f"stopped: {self.dead}", {}
                return "timeout", f"timed out after {_fmt(timeout)} s", {}
        except _Dead:
            self.dead = "the kernel died while running an earlier cell"
            return "dead", "the kernel died while running this cell (a crash or os._exit)", {}
        except Exception as err:  # noqa: BLE001  (zmq trouble: report it, do not crash)
            self.dead = f"the kernel stopped responding ({type(err).__name__})"
            return "dead", f"could not run this cell: {type(err).__name__}: {err}", {}
        self.stderr = self._collect_stderr(msg_id)
        content = reply.get("content", {})
        if content.get("status") == "error":
            return "error", _error_feedback(content), {}
        if content.get("status") == "aborted":
            return "error", "the kernel aborted this cell", {}
        return "ok", "", content.get("user_expressions") or {}


class _Dead(Exception):
    pass


def kernel_env(extra: dict | None = None) -> dict:
    """The kernel's environment: ours, with this tapegrad first on
    PYTHONPATH (the kernel grades with the same library), a non-interactive
    matplotlib backend, and ``extra``."""
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [pkg_parent, env.get("PYTHONPATH", "")] if p)
    env.setdefault("MPLBACKEND", "Agg")
    env.update(extra or {})
    return env


def load_hidden_tests(tests_dir) -> dict:
    r"""``{grade_id: (source, points or None)}`` from ``tests_dir/<grade_id>.py``
    (the points from a ``# points: N`` line among the first five).

    >>> import pathlib, tempfile
    >>> from tapegrad.coursework.grade import load_hidden_tests
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "mul_test.py").write_text("# points: 3\nassert True\n")
    >>> load_hidden_tests(d)
    {'mul_test': ('# points: 3\nassert True\n', 3)}
    """
    out = {}
    for p in sorted(Path(tests_dir).glob("*.py")):
        src = p.read_text()
        m = _POINTS.search("\n".join(src.split("\n")[:5]))
        out[p.stem] = (src, _num(float(m.group(1))) if m else None)
    return out


def hidden_from_source(nb) -> tuple:
    """From an instructor notebook (already read): ``(tests, locked,
    manual)`` where ``tests`` is ``{grade_id: (source, points)}`` of its test
    cells with the hidden tests (markers dropped), ``locked`` ``{grade_id:
    source}`` of its other locked code cells (given code, restored in the
    student's copy as nbgrader's autograde does) and ``manual`` ``{grade_id:
    points}`` of its answers graded by hand."""
    tests, locked, manual = {}, {}, {}
    for cell in nb.cells:
        gid = nbmod.grade_id(cell)
        if not gid:
            continue
        if nbmod.is_test(cell):
            body = [ln for ln in cell.source.split("\n")
                    if nbmod.BEGIN_HIDDEN not in ln and nbmod.END_HIDDEN not in ln]
            tests[gid] = ("\n".join(body).rstrip() + "\n", nbmod.points(cell))
        elif nbmod.is_manual(cell):
            manual[gid] = nbmod.points(cell)
        elif cell.cell_type == "code" and nbmod.meta(cell).get("locked"):
            locked[gid] = cell.source
    return tests, locked, manual


def _unanswered(cell) -> bool:
    src = cell.source.strip()
    if cell.cell_type == "markdown":
        return not src or src == nbmod.ANSWER_STUB
    return not src or (nbmod.CODE_STUB in src and "NotImplementedError" in src)


def run_tests(path, tests_dir=None, timeout: float = 600, env: dict | None = None,
              kernel_name: str = "python3", *, source=None, time_limit: float | None = None,
              notebook=None, on_kernel=None) -> Report:
    """Run the notebook at ``path`` cell by cell in a fresh kernel and
    return a :class:`Report` (see the module docstring). With
    ``tests_dir``, the hidden tests there replace the cells with the same
    grade_id. ``env`` adds environment variables for the kernel (e.g.
    ``{"TAPEGRAD_NOTEBOOK_FAST": "1"}``).

    ``source`` is the instructor's notebook (a path or a notebook already
    read): its test cells, hidden tests included, replace the student's,
    its other locked cells are restored, and only its tests and by-hand
    answers count (a test cell the student added scores nothing).
    ``time_limit`` caps the seconds for the whole notebook; ``notebook``
    is the student's notebook already read (then ``path`` only names it and
    sets the kernel's directory). ``on_kernel(pid)`` is called once the
    kernel has started.

    Every test runs sealed (:mod:`tapegrad.coursework.sealed`): its checkers
    are fresh, their integrity is checked, and the gradient checks are
    judged in this process.

    >>> from tapegrad.coursework import assignments_dir, run_tests
    >>> rep = run_tests(assignments_dir() / "04_optimizer.ipynb")   # doctest: +SKIP
    >>> rep.score, rep.max_score, rep.tests[0].feedback[:40]          # doctest: +SKIP
    (0, 6, 'NotImplementedError: MySGD.step is not ')
    """
    from . import sealed
    path = Path(path).resolve()
    nb = notebook if notebook is not None else nbmod.read(path)
    report = Report(notebook=path.name)
    try:
        nbmod.validate(nb)
    except nbmod.NotebookFormatError as err:
        report.errors.append({"cell": -1, "error": f"the notebook's nbgrader metadata: {err}"})
    hidden, locked, manual = {}, {}, None
    if tests_dir is not None:
        hidden = load_hidden_tests(tests_dir)
    if source is not None:
        src_nb = source if isinstance(source, nbformat.NotebookNode) else nbmod.read(source)
        s_tests, locked, manual = hidden_from_source(src_nb)
        hidden = {**s_tests, **hidden}
    graded = tests_dir is not None or source is not None
    used = set()
    first_failure = None  # feedback of the first failing cell that is not a test
    checks_path, checks_src = sealed.checks_source()
    with _Kernel(str(path.parent), timeout, kernel_env(env), kernel_name, time_limit) as k:
        if on_kernel is not None:
            on_kernel(k.pid)
        code, expr = sealed.setup_code(checks_path, checks_src)
        # the grader's own code gets its own time (importing tapegrad on a loaded machine)
        grader_time = max(timeout, GRADER_CODE_TIMEOUT)
        status, text, ux = k.run(code, user_expressions={"fp": expr}, silent=True,
                                 timeout=grader_time)
        fingerprint = None
        try:
            fingerprint = json.loads(ast.literal_eval(ux["fp"]["data"]["text/plain"]))
        except (KeyError, TypeError, ValueError, SyntaxError):
            report.errors.append({"cell": -1, "error": f"the grader could not set up its "
                                                       f"checks in the kernel: {text}"})

        def test(gid, source, max_points, note=""):
            nonce = sealed.new_nonce()
            if fingerprint is None:
                status, text = "error", "not run: the grader could not set up its checks"
            else:
                status, text, _ = k.run(sealed.prelude(nonce, checks_path, checks_src,
                                                       fingerprint), silent=True,
                                        timeout=grader_time)
                if status == "error" and sealed.TAMPERED not in text:
                    text = f"{sealed.TAMPERED} ({text})"
            if status == "ok":
                line, expr = sealed.epilogue(nonce)
                status, text, ux = k.run(source.rstrip("\n") + line,
                                         user_expressions={"r": expr})
                if status == "ok":
                    verdict = sealed.verify(source, sealed.read_records(ux, "r", nonce))
                    if verdict is not None:
                        status, text = "error", verdict
                    elif k.stderr.strip():
                        # nbgrader's autograde gives a test cell that wrote to
                        # stderr no points (a warning counts), so this grader does too
                        first = k.stderr.strip().splitlines()[-1][:200]
                        status, text = "error", ("the test cell wrote to stderr, which "
                                                 f"nbgrader scores 0: {first}")
            ok = status == "ok"
            if not ok and first_failure is not None and status != "dead":
                text += f"\n(an earlier cell failed: {first_failure})"
            report.tests.append(TestResult(gid, max_points if ok else 0, max_points, ok,
                                           ("passed" if ok else text) + note))

        for i, cell in enumerate(nb.cells):
            gid = nbmod.grade_id(cell)
            if nbmod.is_manual(cell):
                if cell.cell_type == "code":
                    k.run(cell.source)
                if manual is not None and gid not in manual:
                    continue  # not an answer of the instructor's notebook
                pts = manual[gid] if manual is not None else nbmod.points(cell)
                report.tests.append(TestResult(gid or f"cell-{i}", 0, pts, None,
                                               "not answered" if _unanswered(cell)
                                               else "graded by hand"))
                continue
            if cell.cell_type != "code":
                continue
            if nbmod.is_test(cell) and (not graded or gid in hidden):
                gid = gid or f"cell-{i}"
                src, pts = cell.source, nbmod.points(cell)
                if gid in hidden:
                    src, hp = hidden[gid]
                    pts = pts if hp is None else hp
                    used.add(gid)
                test(gid, src, pts)
                continue
            src = locked.get(gid, cell.source) if gid and not nbmod.is_solution(cell) \
                else cell.source
            status, text, _ = k.run(src)
            if status != "ok":
                report.errors.append({"cell": i, "error": text})
                if first_failure is None:
                    first_failure = f"cell {i}: {text}"
        for gid in sorted(set(hidden) - used):
            src, hp = hidden[gid]
            test(gid, src, 0 if hp is None else hp,
                 note=" (the notebook has no cell with this grade_id)")
    return report


def check(path, timeout: float = 600, env: dict | None = None) -> Report:
    """Run the notebook's own tests (what a student sees): ``run_tests``
    without hidden tests.

    >>> from tapegrad.coursework import check                  # doctest: +SKIP
    >>> print(check("02_vjp_rules.ipynb"))                     # doctest: +SKIP
    02_vjp_rules.ipynb: 1 of 9 tests passed, 2/19 points
      FAIL    0/2   mul_vjp_test
            NotImplementedError: mul_vjp is not written yet: replace this line with your code (raised at In [4], line 11)
    ...
    """
    return run_tests(path, None, timeout, env)


def grade(path, tests_dir=None, out=None, timeout: float = 600, env: dict | None = None, *,
          source=None, time_limit: float | None = None) -> Report:
    """Grade a student's notebook with the hidden tests in ``tests_dir``
    (from ``export-tests``) or those of the instructor's notebook
    ``source``; write the JSON report to ``out`` if given (its folder is
    created).

    >>> from tapegrad.coursework import grade                   # doctest: +SKIP
    >>> grade("alice/02_vjp_rules.ipynb", "hidden/02", out="alice-02.json").score  # doctest: +SKIP
    17
    """
    if tests_dir is None and source is None:
        raise ValueError("grade: pass the hidden tests (tests_dir) or the instructor's notebook "
                         "(source)")
    if tests_dir is not None and not Path(tests_dir).is_dir():
        raise FileNotFoundError(f"grade: the tests directory {tests_dir} does not exist")
    if source is not None and not isinstance(source, nbformat.NotebookNode):
        if not Path(source).is_file():
            raise FileNotFoundError(f"grade: the instructor's notebook {source} does not exist")
    report = run_tests(path, tests_dir, timeout, env, source=source, time_limit=time_limit)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report.to_json())
    return report
