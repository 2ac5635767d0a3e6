"""Command line: ``python -m tapegrad.coursework {release,check,grade,grade-all,export-tests,fetch}``.

Run ``python -m tapegrad.coursework COMMAND --help`` for each command's options.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def _env(pairs):
    env = {}
    for p in pairs or []:
        if "=" not in p:
            raise SystemExit(f"--env expects NAME=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        env[k] = v
    return env


def _require(packages):
    """Exit with one line naming the extra if one of ``packages`` is missing."""
    import importlib

    from . import missing_message
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            print(f"error: {missing_message(name)}", file=sys.stderr)
            raise SystemExit(2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tapegrad.coursework",
                                 description="Release, check and grade tapegrad assignments "
                                             "(nbgrader's notebook format).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("release", help="write student versions (solutions and hidden tests "
                                       "removed, outputs cleared)")
    r.add_argument("src", help="instructor notebook, or a directory of them")
    r.add_argument("dst", help="output notebook (.ipynb) or directory")
    r.add_argument("--lang", default="en",
                   help="language of the instructions: en (as written, the default) or one the "
                        "notebooks carry, such as zh (Chinese); grade ids and tests are the same")
    c = sub.add_parser("check", help="run a notebook's tests and print pass/fail per test")
    c.add_argument("notebook")
    c.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    c.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="environment variable for the kernel (repeatable)")
    c.add_argument("--json", action="store_true", help="print the JSON report instead")
    g = sub.add_parser("grade", help="grade a student's notebook with hidden tests; JSON report")
    g.add_argument("notebook")
    g.add_argument("--tests", help="directory of hidden tests <grade_id>.py (from export-tests)")
    g.add_argument("--source", help="the instructor's notebook: its hidden tests and locked cells")
    g.add_argument("--out", help="write the JSON report here (default: print it)")
    g.add_argument("--timeout", type=float, default=600, help="seconds per cell (default 600)")
    g.add_argument("--time-limit", type=float, help="seconds for the whole notebook")
    g.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="environment variable for the kernel (repeatable)")
    ga = sub.add_parser("grade-all", help="grade a class: SUBMITTED/<student>/<assignment>/*.ipynb "
                                          "into a gradebook, Gradescope results and feedback")
    ga.add_argument("submitted", help="folder of submissions, laid out as nbgrader's")
    ga.add_argument("--source", required=True,
                    help="folder of instructor notebooks (or one notebook)")
    ga.add_argument("--out", required=True, help="folder for gradebook.csv and the feedback")
    ga.add_argument("--manual", help="CSV of points graded by hand: "
                                     "student,assignment,grade_id,points[,comment]")
    ga.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default 2)")
    ga.add_argument("--time-limit", type=float, default=600,
                    help="seconds for each notebook (default 600)")
    ga.add_argument("--timeout", type=float, help="seconds per cell (default: the time limit)")
    ga.add_argument("--env", action="append", metavar="NAME=VALUE",
                    help="environment variable for the kernels (repeatable)")
    e = sub.add_parser("export-tests", help="write an instructor notebook's test cells "
                                            "(with hidden tests) to DIR/<grade_id>.py")
    e.add_argument("src")
    e.add_argument("dir")
    f = sub.add_parser("fetch", help="copy the student versions shipped with tapegrad to DST")
    f.add_argument("dst")
    f.add_argument("--lang", default="en", choices=("en", "zh"),
                   help="language of the instructions: en (default) or zh (Chinese)")
    a = ap.parse_args(argv)

    from . import REQUIRES, assignments_dir
    if a.cmd == "fetch":  # needs nothing of the coursework extra
        dst = Path(a.dst)
        dst.mkdir(parents=True, exist_ok=True)
        for p in sorted(assignments_dir(a.lang).glob("*.ipynb")):
            shutil.copy(p, dst / p.name)
            print(f"copied {dst / p.name}")
        return 0
    # check and grade run notebooks in a Jupyter kernel; all commands read them
    _require(REQUIRES if a.cmd in ("check", "grade") else ["nbformat"])
    from . import check, export_tests, grade, release
    from .notebook import NotebookFormatError

    try:
        if a.cmd == "release":
            for p in release(a.src, a.dst, lang=a.lang):
                print(f"released {p}")
            return 0
        if a.cmd == "export-tests":
            for p in export_tests(a.src, a.dir):
                print(f"wrote {p}")
            return 0
        if a.cmd == "check":
            rep = check(a.notebook, timeout=a.timeout, env=_env(a.env))
            print(rep.to_json() if a.json else rep, end="" if a.json else "\n")
            return 0 if rep.ok else 1
        if a.cmd == "grade":
            if not a.tests and not a.source:
                print("error: grade needs --tests DIR or --source NOTEBOOK", file=sys.stderr)
                return 2
            rep = grade(a.notebook, a.tests, out=a.out, timeout=a.timeout, env=_env(a.env),
                        source=a.source, time_limit=a.time_limit)
            if a.out:
                print(f"{rep.notebook}: {rep.score}/{rep.max_score} points; report in {a.out}")
            else:
                print(rep.to_json(), end="")
            return 0
        if a.cmd == "grade-all":
            from .gradeall import grade_all
            reps = grade_all(a.submitted, a.source, a.out, jobs=a.jobs, time_limit=a.time_limit,
                             timeout=a.timeout, env=_env(a.env), manual=a.manual)
            for (student, assignment, name), rep in sorted(reps.items()):
                print(f"{student}/{assignment}/{name}: {rep.score}/{rep.max_score} points")
            print(f"gradebook: {Path(a.out) / 'gradebook.csv'}")
            return 0
    except (NotebookFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
