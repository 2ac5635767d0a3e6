"""Open the committed notebooks in a real browser, in an *untrusted*
JupyterLab, without running them, and check that they read well.

    python notebooks/src/check_render.py                 # every notebooks/*.ipynb
    python notebooks/src/check_render.py 03 05           # only these numbers
    python notebooks/src/check_render.py --shots DIR     # also save screenshots

It needs JupyterLab, Selenium (``pip install jupyterlab selenium``) and
Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium
chromium-driver``); nothing else is downloaded. It copies the notebooks to a
fresh folder, starts JupyterLab there with empty Jupyter data and settings
folders (so no notebook can be trusted: ``jupyter trust`` is never run),
opens each notebook, waits for it to render, and checks in the page:

- no output shows a bare repr (``<... at 0x...>``), as an untrusted
  JupyterLab shows a drawing that has only SVG;
- every output saved with an image (drawings, figures, ``explore``'s static
  view) shows an ``<img>`` that loaded (nonzero natural size), and no output
  fell back to ``text/plain`` when it had a richer form;
- ``explore`` outputs show their static view (the step list);
- MathJax typeset the formulas: no raw ``$$`` or ``\\begin`` is left in
  rendered markdown or outputs, no formula is a MathJax error (the yellow
  box), and each markdown cell with ``$`` math has typeset math;
- no output is an error or a traceback.

Then it opens each notebook as nbconvert's HTML page (``jupyter nbconvert
--to html``) and checks the same, except the formulas: that page takes
MathJax from a CDN, which the check does not reach.

With ``--shots DIR`` it also saves a screenshot of every output that is not
plain text (``NN_cellK_outJ.png``: drawings, figures, step records), to look
at. Exit status 0 when every check passes;
each problem is printed as ``notebook: cell N: what``.
"""
import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NB_DIR = os.path.dirname(HERE)

BARE_REPR = re.compile(r"<[\w.]+(?: [\w.]+)* (?:object )?at 0x[0-9a-fA-F]+>")
RICH = ("image/png", "image/svg+xml", "text/html", "text/latex", "text/markdown", "image/jpeg")
SETTINGS = {
    # render every cell (JupyterLab 4 only renders the cells in view by default)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # no news/update toast over the page
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}

# Runs in the page: what each cell of the open notebook shows.
PAGE_STATE = r"""
const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
    .filter(p => !p.classList.contains('lm-mod-hidden'))[0]
    || (document.querySelector('.jp-Notebook') && document.body);   // nbconvert's page
if (!panel) return null;
const cells = [...panel.querySelectorAll('.jp-Cell')]
    .filter(c => !c.parentElement.closest('.jp-Cell'));
return cells.map(c => {
  const md = c.querySelector('.jp-MarkdownOutput');
  const outs = [...c.querySelectorAll('.jp-OutputArea-child')].map(o => {
    const out = o.querySelector('.jp-OutputArea-output');
    return {
      mime: out ? (out.getAttribute('data-mime-type') || '') : '',
      text: out ? out.innerText.slice(0, 2000) : '',
      imgs: [...o.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
      details: o.querySelectorAll('details').length,
      svgs: o.querySelectorAll('svg').length,
      math: o.querySelectorAll('mjx-container').length,
      texErrors: [...o.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
    };
  });
  return {
    kind: c.classList.contains('jp-MarkdownCell') ? 'markdown'
        : c.classList.contains('jp-CodeCell') ? 'code' : 'raw',
    mdText: md ? md.innerText : '',
    mdMath: md ? md.querySelectorAll('mjx-container').length : 0,
    mdTexErrors: md ? [...md.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent) : [],
    outputs: outs,
  };
});
"""


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_browser():
    """The system chromium and its driver, or None, None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return browser, driver


@contextlib.contextmanager
def jupyterlab(root, home):
    """A JupyterLab server on a free local port serving ``root``, with Jupyter
    folders under ``home`` (no trust database, our settings only)."""
    port = free_port()
    env = dict(os.environ, JUPYTER_DATA_DIR=os.path.join(home, "data"),
               JUPYTER_CONFIG_DIR=os.path.join(home, "config"),
               JUPYTER_RUNTIME_DIR=os.path.join(home, "runtime"),
               JUPYTERLAB_SETTINGS_DIR=os.path.join(home, "settings"),
               JUPYTERLAB_WORKSPACES_DIR=os.path.join(home, "workspaces"))
    for name, value in SETTINGS.items():
        path = os.path.join(home, "settings", *name.split("/")[:-1])
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, name.split("/")[-1]), "w") as f:
            json.dump(value, f)
    log = open(os.path.join(home, "jupyterlab.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=None",
         "--ServerApp.open_browser=False", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/api/status", timeout=5)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + open(os.path.join(home, "jupyterlab.log")).read()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def browser_session(browser, driver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000", "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(driver), options=opts)


def expected(nb):
    """For each cell of the saved notebook: its kind, whether its markdown has
    math, and for each output what it must show."""
    cells = []
    for c in nb["cells"]:
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        outs = []
        for o in c.get("outputs", []):
            kind = o["output_type"]
            data = o.get("data", {})
            plain = data.get("text/plain", "")
            plain = "".join(plain) if isinstance(plain, list) else plain
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            outs.append({"type": kind, "rich": [m for m in RICH if m in data],
                         "image": "image/png" in data or "<img" in html,
                         "explore": plain.startswith("<tg.inspect.Explorer"),
                         "name": o.get("name")})
        math = c["cell_type"] == "markdown" and bool(re.search(r"\$[^$]+\$", src))
        cells.append({"kind": c["cell_type"], "math": math, "outputs": outs})
    return cells


def check_state(name, exp, got, nbconvert=False):
    """The problems of one rendered notebook (a list of strings).
    ``nbconvert``: the page is nbconvert's HTML, which shows SVG inline and
    takes MathJax from a CDN (not reachable here): formulas are not checked."""
    problems = []
    if got is None or len(got) != len(exp):
        return [f"{name}: {0 if got is None else len(got)} cells rendered, "
                f"the notebook has {len(exp)}"]
    for i, (e, g) in enumerate(zip(exp, got)):
        where = f"{name}: cell {i}"
        if e["kind"] == "markdown" and nbconvert:
            continue
        if e["kind"] == "markdown":
            text = g["mdText"]
            if "$$" in text or "\\begin{" in text:
                problems.append(f"{where}: raw TeX left in rendered markdown: "
                                f"{text[text.find('$'):][:60]!r}")
            for err in g["mdTexErrors"]:
                problems.append(f"{where}: MathJax could not typeset a formula: {err[:80]}")
            if e["math"] and g["mdMath"] == 0:
                problems.append(f"{where}: markdown has $...$ math but nothing was typeset")
            continue
        # JupyterLab shows consecutive stream outputs of one name as one
        outs = []
        for o in e["outputs"]:
            if (outs and o["type"] == "stream" and outs[-1]["type"] == "stream"
                    and outs[-1]["name"] == o["name"]):
                continue
            outs.append(o)
        if len(g["outputs"]) != len(outs):
            problems.append(f"{where}: {len(g['outputs'])} outputs shown, "
                            f"{len(outs)} saved")
            continue
        for j, (eo, go) in enumerate(zip(outs, g["outputs"])):
            at = f"{where}, output {j}"
            if BARE_REPR.search(go["text"]):
                problems.append(f"{at}: shows a bare repr: {BARE_REPR.search(go['text']).group()}")
            if eo["type"] == "error" or "Traceback (most recent call last)" in go["text"]:
                problems.append(f"{at}: an error/traceback: {go['text'][:100]!r}")
            if eo["rich"] and go["mime"] == "text/plain":
                problems.append(f"{at}: saved with {eo['rich']} but shown as text/plain")
            for err in go["texErrors"]:
                problems.append(f"{at}: MathJax could not typeset a formula: {err[:80]}")
            if not nbconvert and ("$$" in go["text"] or "\\begin{" in go["text"]):
                problems.append(f"{at}: raw TeX left in the output")
            bad = [im for im in go["imgs"] if not (im[0] and im[1] > 0 and im[2] > 0)]
            if bad:
                problems.append(f"{at}: {len(bad)} image(s) did not load")
            if eo["image"] and not any(im[1] > 0 for im in go["imgs"]) and not (
                    nbconvert and go["svgs"]):
                problems.append(f"{at}: saved with an image but shows none "
                                f"(shown as {go['mime'] or '?'})")
            if eo["explore"] and go["details"] == 0:
                problems.append(f"{at}: explore output without its static step list")
    return problems


def open_notebook(drv, address, ncells, timeout=180):
    """Open a notebook page and wait until its cells and images rendered
    and MathJax went quiet; returns the page state."""
    drv.get(address)
    deadline = time.time() + timeout
    last, stable = None, 0
    while time.time() < deadline:
        state = drv.execute_script(PAGE_STATE)
        if state is not None and len(state) == ncells:
            key = json.dumps(state, sort_keys=True)
            pending = any(not im[0] for c in state for o in c["outputs"] for im in o["imgs"])
            stable = stable + 1 if key == last and not pending else 0
            last = key
            if stable >= 3:  # unchanged over three polls: rendering has finished
                return state
        time.sleep(1.0)
    return drv.execute_script(PAGE_STATE)


def screenshots(drv, prefix):
    """A screenshot of every output that is not plain text (drawings,
    figures, step records, ``explore`` views): ``prefix_cellN_outJ.png``.
    Returns how many were taken."""
    from selenium.webdriver.common.by import By
    n = 0
    cells = drv.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")
    for i, cell in enumerate(cells):
        for j, out in enumerate(cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-child")):
            inner = out.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
            mime = inner[0].get_attribute("data-mime-type") if inner else ""
            if mime in ("", "text/plain", "application/vnd.jupyter.stdout",
                        "application/vnd.jupyter.stderr"):
                continue
            drv.execute_script("arguments[0].scrollIntoView({block: 'start'})", out)
            time.sleep(0.3)
            out.screenshot(f"{prefix}_cell{i}_out{j}.png")
            n += 1
    return n


def check_notebooks(paths, shots=None, log=print, html=True):
    """Open each notebook of ``paths`` in one untrusted JupyterLab and (with
    ``html``) as nbconvert's HTML page; returns the problems found (strings).
    ``shots``: a folder for screenshots."""
    browser, driver = find_browser()
    if not browser or not driver:
        raise RuntimeError("needs Debian's chromium and chromium-driver "
                           "(apt-get install chromium chromium-driver)")
    problems = []
    with tempfile.TemporaryDirectory(prefix="tg-render-") as tmp:
        root, home = os.path.join(tmp, "notebooks"), os.path.join(tmp, "jupyter")
        os.makedirs(root)
        os.makedirs(home)
        for p in paths:  # a fresh copy: never trusted, and no kernel can touch the originals
            shutil.copy(p, root)
        if shots:
            os.makedirs(shots, exist_ok=True)
        with jupyterlab(root, home) as url:
            drv = browser_session(browser, driver)
            try:
                for p in paths:
                    name = os.path.basename(p)
                    with open(p, encoding="utf-8") as f:
                        exp = expected(json.load(f))
                    t0 = time.time()
                    state = open_notebook(drv, f"{url}/lab/tree/{name}", len(exp))
                    found = list(dict.fromkeys(check_state(name, exp, state)))
                    problems += found
                    nimg = sum(len(o["imgs"]) for c in state or [] for o in c["outputs"])
                    nmath = sum(c["mdMath"] for c in state or [])
                    log(f"{name}: {len(exp)} cells, {nimg} images, {nmath} formulas, "
                        f"{len(found)} problems ({time.time() - t0:.0f} s)")
                    if shots:
                        prefix = os.path.join(shots, name[:2] + ("_zh" if ".zh." in name else ""))
                        log(f"  {screenshots(drv, prefix)} screenshots in {shots}")
                if html:  # the same notebooks as nbconvert's HTML pages
                    from nbconvert import HTMLExporter
                    for p in paths:
                        name = os.path.basename(p)
                        page = os.path.join(tmp, name[:-len(".ipynb")] + ".html")
                        body, _ = HTMLExporter().from_filename(p)
                        with open(page, "w", encoding="utf-8") as f:
                            f.write(body)
                        with open(p, encoding="utf-8") as f:
                            exp = expected(json.load(f))
                        state = open_notebook(drv, "file://" + page, len(exp), timeout=60)
                        found = list(dict.fromkeys(check_state(name + " (nbconvert HTML)", exp,
                                                               state, nbconvert=True)))
                        problems += found
                        nimg = sum(len(o["imgs"]) + o["svgs"] for c in state or []
                                   for o in c["outputs"])
                        log(f"{name} as nbconvert HTML: {nimg} images/SVGs, "
                            f"{len(found)} problems")
            finally:
                drv.quit()
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("only", nargs="*", help="notebook numbers (01 ... 05); default: all")
    ap.add_argument("--shots", help="save a screenshot of every non-text output here")
    ap.add_argument("--notebooks", default=NB_DIR, help="the folder of notebooks (default: ours)")
    ap.add_argument("--no-html", action="store_true", help="skip the nbconvert HTML pages")
    args = ap.parse_args(argv)
    paths = sorted(p for p in glob.glob(os.path.join(args.notebooks, "*.ipynb"))
                   if not args.only or os.path.basename(p)[:2] in args.only)
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 2
    try:
        problems = check_notebooks(paths, args.shots, log=lambda m: print(m, flush=True),
                                   html=not args.no_html)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    print(f"{len(paths)} notebooks, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
