"""Grade a whole class: ``python -m tapegrad.coursework grade-all``.

Submissions are laid out as nbgrader lays them,
``SUBMITTED/<student>/<assignment>/<notebook>.ipynb``; each is graded with
the hidden tests of the instructor's notebook of the same file name in
``SOURCE`` (``SOURCE/<notebook>.ipynb`` or ``SOURCE/<assignment>/<notebook>.ipynb``).

- every instructor notebook and every submission is read into memory
  before the first kernel starts, so that no student's code can change what
  is graded (its own or another student's tests or notebook);
- each notebook runs in its own worker process and kernel, started in an
  empty temporary directory that holds only its copy of the notebook,
  ``jobs`` at a time, with a time limit for the whole notebook (and one per
  cell): a loop or a crash costs that student the cells it stops, not the
  class; a worker that overruns the limit by more than a grace period is
  killed with its kernel;
- the results are written once all kernels have stopped: ``gradebook.csv``
  (a row per student, a column per assignment and the total),
  ``<student>/<assignment>/results.json`` in Gradescope's autograder format,
  ``<student>/<assignment>/report.json`` (the grader's report) and
  ``<student>/feedback.html``.

Points for answers graded by hand come from a CSV (``--manual``) with the
columns ``student,assignment,grade_id,points`` (and optionally ``comment``).
"""
from __future__ import annotations

import csv
import html
import json
import multiprocessing as mp
import os
import queue
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import notebook as nbmod
from .grade import Report, TestResult, _fmt, _num, run_tests

__all__ = ["grade_all", "Submission", "read_manual_scores", "gradescope_results"]

GRACE = 90  # seconds past the time limit before a worker is killed (kernel start, shutdown)


@dataclass
class Submission:
    student: str
    assignment: str
    notebook: str          # file name
    text: str              # the notebook's JSON, read before any kernel ran


def _sources(source) -> dict:
    """``{notebook file name: notebook}`` of the instructor's notebooks."""
    source = Path(source)
    if source.is_file():
        paths = [source]
    elif source.is_dir():
        paths = sorted(source.glob("*.ipynb")) + sorted(source.glob("*/*.ipynb"))
    else:
        raise FileNotFoundError(f"grade-all: the source {source} does not exist")
    out = {}
    for p in paths:
        if p.name.startswith(".") or ".ipynb_checkpoints" in p.parts:
            continue
        out.setdefault(p.name, nbmod.read(p))
    if not out:
        raise FileNotFoundError(f"grade-all: no instructor notebooks in {source}")
    return out


def _submissions(submitted, sources: dict) -> list:
    submitted = Path(submitted)
    if not submitted.is_dir():
        raise FileNotFoundError(f"grade-all: the submissions folder {submitted} does not exist")
    subs = []
    for p in sorted(submitted.glob("*/*/*.ipynb")):
        if p.name in sources and ".ipynb_checkpoints" not in p.parts:
            subs.append(Submission(p.parts[-3], p.parts[-2], p.name, p.read_text()))
    return subs


def read_manual_scores(path) -> dict:
    """``{(student, assignment, grade_id): (points, comment)}`` from a CSV with
    the columns ``student,assignment,grade_id,points[,comment]``."""
    out = {}
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        missing = {"student", "assignment", "grade_id", "points"} - set(rows.fieldnames or [])
        if missing:
            raise ValueError(f"grade-all: the manual scores {path} lack the columns "
                             f"{', '.join(sorted(missing))}")
        for n, row in enumerate(rows, start=2):
            try:
                pts = float(row["points"])
            except (TypeError, ValueError):
                raise ValueError(f"grade-all: {path}, line {n}: points {row['points']!r} is not "
                                 f"a number") from None
            out[(row["student"], row["assignment"], row["grade_id"])] = (
                _num(pts), (row.get("comment") or "").strip())
    return out


def _worker(sub: Submission, src_nb, timeout, time_limit, env, kernel_name, q):
    os.setsid()  # its own process group: the parent can stop it and what it started
    try:
        nb = nbformat.reads(sub.text, as_version=4)
        with tempfile.TemporaryDirectory(prefix="tapegrad-grade-") as d:
            path = Path(d) / sub.notebook
            path.write_text(sub.text)
            rep = run_tests(path, None, timeout, env, kernel_name, source=src_nb,
                            time_limit=time_limit, notebook=nb,
                            on_kernel=lambda pid: q.put(("pid", pid)))
        q.put(("report", rep.to_dict()))
    except Exception as err:  # noqa: BLE001  (an unreadable notebook is that student's problem)
        q.put(("error", f"{type(err).__name__}: {err}"))


def _failed_report(sub: Submission, src_nb, why: str) -> Report:
    from .grade import hidden_from_source
    tests, _, manual = hidden_from_source(src_nb)
    rep = Report(sub.notebook)
    for gid, (_, pts) in tests.items():
        rep.tests.append(TestResult(gid, 0, pts or 0, False, why))
    for gid, pts in manual.items():
        rep.tests.append(TestResult(gid, 0, pts, None, "not answered"))
    rep.errors.append({"cell": -1, "error": why})
    return rep


def _from_dict(d: dict) -> Report:
    return Report(d["notebook"], [TestResult(t["grade_id"], t["points"], t["max_points"],
                                             t["passed"], t["feedback"]) for t in d["tests"]],
                  list(d["errors"]))


def _kill(pid):
    for f in (os.killpg, os.kill):
        try:
            f(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _run_all(subs, sources, jobs, timeout, time_limit, env, kernel_name) -> list:
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    pending = list(enumerate(subs))
    running = {}   # index -> (process, queue, start, kernel pid)
    results = [None] * len(subs)
    hard = (time_limit or 3600) + GRACE
    while pending or running:
        while pending and len(running) < max(1, jobs):
            i, sub = pending.pop(0)
            q = ctx.Queue()
            p = ctx.Process(target=_worker, args=(sub, sources[sub.notebook], timeout,
                                                  time_limit, env, kernel_name, q), daemon=False)
            p.start()
            running[i] = [p, q, time.monotonic(), None]
        time.sleep(0.05)
        for i in list(running):
            p, q, start, kpid = running[i]
            try:
                while True:
                    kind, val = q.get_nowait()
                    if kind == "pid":
                        running[i][3] = val
                    else:
                        results[i] = (kind, val)
            except queue.Empty:
                pass
            over = time.monotonic() - start > hard
            if results[i] is not None or not p.is_alive() or over:
                if results[i] is None:
                    p.join(1)
                    try:  # a last message sent just before the worker ended
                        kind, val = q.get(timeout=1)
                        if kind != "pid":
                            results[i] = (kind, val)
                    except queue.Empty:
                        pass
                if p.is_alive() and results[i] is None:
                    _kill(p.pid)
                p.join(30)
                if kpid:
                    _kill(kpid)
                if results[i] is None:
                    why = (f"not graded: the grader stopped this notebook after {_fmt(hard)} s"
                           if over else "not graded: the grading process ended unexpectedly")
                    results[i] = ("failed", why)
                del running[i]
    reports = []
    for sub, (kind, val) in zip(subs, results):
        if kind == "report":
            reports.append(_from_dict(val))
        else:
            why = val if kind == "failed" else f"not graded: {val}"
            reports.append(_failed_report(sub, sources[sub.notebook], why))
    return reports


def gradescope_results(rep: Report) -> dict:
    """Gradescope's autograder ``results.json`` for one report: ``score``
    and one test per graded cell (by-hand answers once they have points)."""
    tests = []
    for t in rep.tests:
        if t.passed is None and not t.feedback.startswith("graded by hand:"):
            continue
        tests.append({"name": t.grade_id, "score": _num(t.points), "max_score": _num(t.max_points),
                      "output": t.feedback})
    score = _num(sum(t["score"] for t in tests))
    out = {"score": score, "tests": tests}
    left = [t for t in rep.tests if t.passed is None and not t.feedback.startswith("graded by hand:")]
    if left:
        out["output"] = (f"{_fmt(sum(t.max_points for t in left))} points of answers graded by "
                         f"hand are not in this score yet")
    return out


def _merge_manual(rep: Report, student, assignment, manual: dict) -> None:
    for t in rep.tests:
        if t.passed is not None:
            continue
        key = (student, assignment, t.grade_id)
        if key in manual:
            pts, comment = manual[key]
            t.points = _num(max(0.0, min(float(pts), float(t.max_points))))
            t.feedback = f"graded by hand: {_fmt(t.points)}/{_fmt(t.max_points)}" + \
                (f" ({comment})" if comment else "")


def _total(rep: Report):
    return _num(sum(t.points for t in rep.tests))


def _feedback_html(student: str, items: list) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Feedback for {e(student)}"
             f"</title><style>body{{font-family:sans-serif;max-width:60em;margin:auto}}"
             f".pass{{color:#15632a}}.fail{{color:#a01818}}.hand{{color:#555}}"
             f"pre{{white-space:pre-wrap;background:#f6f6f6;padding:.5em}}</style></head><body>",
             f"<h1>Feedback for {e(student)}</h1>"]
    for assignment, rep in items:
        maxp = _num(sum(t.max_points for t in rep.tests))
        parts.append(f"<h2>{e(assignment)}: {e(rep.notebook)} &mdash; {_fmt(_total(rep))}/"
                     f"{_fmt(maxp)} points</h2><table>")
        for t in rep.tests:
            cls = "hand" if t.passed is None else ("pass" if t.passed else "fail")
            mark = "by hand" if t.passed is None else ("passed" if t.passed else "failed")
            parts.append(f"<tr class='{cls}'><td>{e(t.grade_id)}</td><td>{_fmt(t.points)}/"
                         f"{_fmt(t.max_points)}</td><td>{mark}</td></tr>")
            if t.passed is False or t.passed is None:
                parts.append(f"<tr><td colspan='3'><pre>{e(t.feedback)}</pre></td></tr>")
        parts.append("</table>")
        if rep.errors:
            parts.append("<p>Cells that are not tests and failed:</p><pre>" +
                         e("\n".join(f"cell {x['cell']}: {x['error']}" for x in rep.errors)) +
                         "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def grade_all(submitted, source, out, *, jobs: int = 2, time_limit: float = 600,
              timeout: float | None = None, env: dict | None = None, manual=None,
              kernel_name: str = "python3") -> dict:
    """Grade every submission in ``submitted`` (see the module docstring)
    and write the gradebook and feedback to ``out``. Returns
    ``{(student, assignment, notebook): Report}``.

    >>> from tapegrad.coursework.gradeall import grade_all   # doctest: +SKIP
    >>> reps = grade_all("submitted", "notebooks/assignments", "grades", jobs=2)  # doctest: +SKIP
    """
    sources = _sources(source)
    subs = _submissions(submitted, sources)
    manual_scores = read_manual_scores(manual) if manual else {}
    reports = _run_all(subs, sources, jobs, timeout or time_limit, time_limit, env, kernel_name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by_key = {}
    for sub, rep in zip(subs, reports):
        _merge_manual(rep, sub.student, sub.assignment, manual_scores)
        by_key[(sub.student, sub.assignment, sub.notebook)] = rep
        d = out / sub.student / sub.assignment
        d.mkdir(parents=True, exist_ok=True)
        stem = Path(sub.notebook).stem
        name = "results.json" if sum(1 for s in subs if (s.student, s.assignment) ==
                                     (sub.student, sub.assignment)) == 1 else f"{stem}.results.json"
        (d / name).write_text(json.dumps(gradescope_results(rep), indent=2, sort_keys=True) + "\n")
        (d / f"{stem}.report.json").write_text(rep.to_json())
    students = sorted({s.student for s in subs})
    assignments = sorted({s.assignment for s in subs})
    with open(out / "gradebook.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *assignments, "total"])
        for st in students:
            row = []
            for a in assignments:
                row.append(_num(sum(_total(r) for (s, aa, _), r in by_key.items()
                                    if s == st and aa == a)))
            w.writerow([st, *map(_fmt, row), _fmt(_num(sum(row)))])
    for st in students:
        items = [(a, r) for (s, a, _), r in sorted(by_key.items()) if s == st]
        (out / st / "feedback.html").write_text(_feedback_html(st, items))
    return by_key
