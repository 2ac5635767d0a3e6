"""Draw the graph behind a tensor as SVG (pure Python, no graphviz needed).

Entries are op nodes (``#seq op`` with their output's shape), leaves and
constants are tensor nodes; small tensors show their values and, when known,
their gradients. With a stepper, the entries that already ran are green and
the current one is orange. The layout is a small layered (Sugiyama-style)
layout: ranks by longest path, dummy points for long edges, barycentre
ordering, then x positions relaxed towards the neighbours.
"""
from __future__ import annotations

import os
from xml.sax.saxutils import escape

import numpy as np

from .._C import Tensor
from .._display import kind, label, op_label, reachable_entries, shape_str, summary_text

CHAR_W = 7.0      # monospace 11px (DejaVu Sans Mono is 6.6; leave room)
LINE_H = 14
PAD_X, PAD_Y = 8, 6
GAP_X, GAP_Y = 22, 34
MAX_VALUES = 6    # values shown in a node when the tensor has at most this many
LEGEND = [("#dbe9ff", "#1f5fbf", "leaf (requires grad)"), ("#f2f2f2", "#999", "constant"),
          ("#fff", "#555", "op (tape entry)"), ("#e6f5e6", "#2e7d32", "VJP ran"),
          ("#ffd699", "#e65100", "current step")]
LEGEND_W = sum(16 + len(t) * 5.6 + 14 for _, _, t in LEGEND) + 80


def _vals(a, max_values=MAX_VALUES):
    a = np.asarray(a)
    if a.size <= max_values:
        return np.array2string(a.astype(np.float64) if a.dtype.kind == "f" else a, precision=3,
                               separator=", ", max_line_width=10**6, suppress_small=True).replace("\n", "")
    fin = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if fin.size == 0:
        return "all non-finite"
    return f"max|x| {float(np.abs(fin).max()):.3g}, mean {float(fin.mean()):.3g}"


class _Node:
    def __init__(self, nid, lines, style, rank=0, dummy=False):
        self.id = nid
        self.lines = lines          # list of (text, css class)
        self.style = style
        self.rank = rank
        self.dummy = dummy
        w = max((len(t) for t, _ in lines), default=0)
        self.w = 0 if dummy else w * CHAR_W + 2 * PAD_X
        self.h = 0 if dummy else len(lines) * LINE_H + 2 * PAD_Y
        self.x = self.y = 0.0
        self.order = 0.0


class GraphDrawing:
    """An SVG drawing of a graph (from :func:`draw`). Shows itself in
    Jupyter (``_repr_svg_``); ``svg()`` and ``dot()`` give the text;
    ``save(path)`` writes ``.svg`` (or ``.dot``, ``.png`` with matplotlib or
    graphviz, ``.pdf`` with graphviz). In Jupyter it shows as SVG with a PNG
    beside it (``png()``, rasterised with matplotlib when it is installed), so
    an untrusted notebook, which drops SVG, still shows the picture.

    >>> import tapegrad as tg
    >>> d = tg.inspect.draw(tg.tensor([1.0], requires_grad=True).exp().sum())
    >>> d.dot().splitlines()[0], d.svg()[:4]
    ('digraph tapegrad {', '<svg')
    """

    def __init__(self, nodes, edges, title=""):
        self.nodes = nodes            # id -> _Node
        self.edges = edges            # (src, dst, label)
        self.title = title
        self._layout()

    # -- layout ----------------------------------------------------------------
    def _layout(self):
        nodes = self.nodes
        # dummy nodes for edges longer than one rank
        self._paths = []
        for k, (s, d, lab) in enumerate(self.edges):
            path = [s]
            r0, r1 = nodes[s].rank, nodes[d].rank
            for r in range(r0 + 1, r1):
                did = f"_d{k}_{r}"
                nodes[did] = _Node(did, [], {}, rank=r, dummy=True)
                path.append(did)
            path.append(d)
            self._paths.append((path, lab))
        preds = {n: [] for n in nodes}
        succs = {n: [] for n in nodes}
        for path, _ in self._paths:
            for a, b in zip(path, path[1:]):
                succs[a].append(b)
                preds[b].append(a)
        nr = max((n.rank for n in nodes.values()), default=0) + 1
        ranks = [[] for _ in range(nr)]
        for nid, n in nodes.items():  # insertion order: oldest first
            ranks[n.rank].append(nid)
        for r in ranks:
            for i, nid in enumerate(r):
                nodes[nid].order = i

        def sweep(rank_ids, nbrs):
            def key(nid):
                ps = nbrs[nid]
                return (sum(nodes[p].order for p in ps) / len(ps)) if ps else nodes[nid].order
            rank_ids.sort(key=key)
            for i, nid in enumerate(rank_ids):
                nodes[nid].order = i

        for _ in range(8):
            for r in range(1, nr):
                sweep(ranks[r], preds)
            for r in range(nr - 2, -1, -1):
                sweep(ranks[r], succs)
        # y
        y = 40.0 if self.title else 12.0
        for r in ranks:
            hmax = max((nodes[n].h for n in r), default=0) or 10
            for n in r:
                nodes[n].y = y + (hmax - nodes[n].h) / 2
                if nodes[n].dummy:  # a long edge runs straight down through the whole rank
                    nodes[n].y, nodes[n].span = y, hmax
            y += hmax + GAP_Y
        self.height = y - GAP_Y + 40
        # x: pack, then relax towards the neighbours' centres
        for r in ranks:
            x = 10.0
            for n in r:
                node = nodes[n]
                node.x = x
                x += node.w + GAP_X

        def centre(n):
            return nodes[n].x + nodes[n].w / 2

        for it in range(12):
            order = range(1, nr) if it % 2 == 0 else range(nr - 2, -1, -1)
            for ri in order:
                r = ranks[ri]
                nb = preds if it % 2 == 0 else succs
                want = []
                for n in r:
                    ps = nb[n] + (succs[n] if it % 2 == 0 else preds[n])
                    want.append(sum(centre(p) for p in ps) / len(ps) - nodes[n].w / 2 if ps else nodes[n].x)
                # place in order without overlap, as close as possible to `want`
                xs = list(want)
                for i in range(1, len(r)):
                    both = nodes[r[i]].dummy and nodes[r[i - 1]].dummy
                    lo = xs[i - 1] + nodes[r[i - 1]].w + (8 if both else 16 if nodes[r[i]].dummy or
                                                          nodes[r[i - 1]].dummy else GAP_X)
                    xs[i] = max(xs[i], lo)
                for n, x in zip(r, xs):
                    nodes[n].x = x
        minx = min((n.x for n in nodes.values()), default=0)
        for n in nodes.values():
            n.x += 10 - minx
        self.width = max([n.x + n.w for n in nodes.values()] + [len(self.title) * 7.5 + 20, LEGEND_W]) + 10

    # -- output ----------------------------------------------------------------
    def _edge_points(self, path):
        """The corner points of one edge: out of the bottom of its source box,
        down through each dummy node of a long edge, into the top of its
        target box (shared by the SVG and the PNG drawing)."""
        pts = []
        for i, nid in enumerate(path):
            n = self.nodes[nid]
            cx = n.x + n.w / 2
            if i == 0:
                pts.append((cx, n.y + n.h))
            elif i == len(path) - 1:
                pts.append((cx, n.y))
            else:
                pts.append((cx, n.y))
                pts.append((cx, n.y + getattr(n, "span", n.h)))
        return pts

    def svg(self) -> str:
        """The drawing as an SVG document (a string)."""
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width:.0f}" '
               f'height="{self.height:.0f}" viewBox="0 0 {self.width:.0f} {self.height:.0f}" '
               f'font-family="monospace" font-size="11">',
               '<defs><marker id="tgarrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
               'fill="#666"/></marker></defs>',
               f'<rect x="0" y="0" width="{self.width:.0f}" height="{self.height:.0f}" fill="white"/>']
        if self.title:
            out.append(f'<text x="10" y="22" font-size="13" font-weight="bold" '
                       f'font-family="sans-serif">{escape(self.title)}</text>')
        nodes = self.nodes
        for path, lab in self._paths:
            pts = self._edge_points(path)
            d = f"M {pts[0][0]:.1f} {pts[0][1]:.1f}"
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                if x0 == x1:
                    d += f" L {x1:.1f} {y1:.1f}"
                    continue
                my = (y0 + y1) / 2
                d += f" C {x0:.1f} {my:.1f} {x1:.1f} {my:.1f} {x1:.1f} {y1:.1f}"
            out.append(f'<path d="{d}" fill="none" stroke="#888" stroke-width="1.2" '
                       f'marker-end="url(#tgarrow)"/>')
            if lab:  # the input's position, on the curve a little above the arrowhead
                (x0, y0), (x1, y1) = pts[-2], pts[-1]
                my, t = (y0 + y1) / 2, 0.78
                bx = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * x0 + 3 * (1 - t) * t * t * x1 + t ** 3 * x1
                by = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * my + 3 * (1 - t) * t * t * my + t ** 3 * y1
                out.append(f'<text x="{bx + 3:.1f}" y="{by:.1f}" fill="#888" font-size="9">'
                           f'{escape(lab)}</text>')
        for n in nodes.values():
            if n.dummy:
                continue
            st = n.style
            out.append(f'<g><title>{escape(st.get("tooltip", ""))}</title>'
                       f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{n.w:.1f}" height="{n.h:.1f}" '
                       f'rx="{st.get("rx", 3)}" fill="{st.get("fill", "#fff")}" '
                       f'stroke="{st.get("stroke", "#555")}" stroke-width="{st.get("sw", 1)}"/>')
            for i, (text, cls) in enumerate(n.lines):
                color = {"head": "#000", "shape": "#333", "val": "#555", "grad": "#b71c1c",
                         "partial": "#e65100"}.get(cls, "#000")
                weight = ' font-weight="bold"' if cls == "head" else ""
                style = ' font-style="italic"' if cls == "partial" else ""
                out.append(f'<text x="{n.x + PAD_X:.1f}" y="{n.y + PAD_Y + (i + 1) * LINE_H - 3:.1f}" '
                           f'fill="{color}"{weight}{style}>{escape(text)}</text>')
            out.append("</g>")
        ly = self.height - 14
        x = 10
        for fill, stroke, text in LEGEND:
            out.append(f'<rect x="{x}" y="{ly - 9}" width="12" height="10" fill="{fill}" stroke="{stroke}"/>'
                       f'<text x="{x + 16}" y="{ly}" fill="#555" font-family="sans-serif" '
                       f'font-size="10">{escape(text)}</text>')
            x += 16 + len(text) * 5.6 + 14
        out.append(f'<text x="{x}" y="{ly}" fill="#b71c1c" font-family="sans-serif" font-size="10">'
                   f'∂: gradient</text>')
        out.append("</svg>")
        return "".join(out)

    def _repr_svg_(self) -> str:
        return self.svg()

    def png(self, scale: float = 1.5) -> bytes | None:
        """The drawing as PNG bytes, rasterised with matplotlib (the same
        layout, boxes, curves and text as :meth:`svg`), or None when
        matplotlib is not installed. ``scale`` is pixels per SVG unit."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.patches import FancyBboxPatch, PathPatch, Polygon, Rectangle
            from matplotlib.path import Path
        except ImportError:
            return None
        import io
        W, H = float(self.width), float(self.height)
        # one SVG unit = one point, so font sizes carry over; dpi sets the pixel density
        fig = Figure(figsize=(W / 72, H / 72), dpi=72 * scale)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.axis("off")
        mono = {"family": "monospace"}
        if self.title:
            ax.text(10, 22, self.title, fontsize=13, fontweight="bold", family="sans-serif",
                    va="baseline")
        nodes = self.nodes
        for path, lab in self._paths:
            pts = self._edge_points(path)
            verts, codes = [pts[0]], [Path.MOVETO]
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                if x0 == x1:
                    verts.append((x1, y1))
                    codes.append(Path.LINETO)
                    continue
                my = (y0 + y1) / 2
                verts += [(x0, my), (x1, my), (x1, y1)]
                codes += [Path.CURVE4] * 3
            ax.add_patch(PathPatch(Path(verts, codes), fill=False, edgecolor="#888", lw=1.2))
            # arrowhead along the last segment's end direction
            (x0, y0), (x1, y1) = verts[-2], verts[-1]
            dx, dy = x1 - x0, y1 - y0
            norm = (dx * dx + dy * dy) ** 0.5 or 1.0
            ux, uy = dx / norm, dy / norm
            ax.add_patch(Polygon([(x1, y1), (x1 - 7 * ux - 3.5 * uy, y1 - 7 * uy + 3.5 * ux),
                                  (x1 - 7 * ux + 3.5 * uy, y1 - 7 * uy - 3.5 * ux)],
                                 closed=True, facecolor="#666", edgecolor="none"))
            if lab:
                (x0, y0), (x1, y1) = pts[-2], pts[-1]
                my, t = (y0 + y1) / 2, 0.78
                bx = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * x0 + 3 * (1 - t) * t * t * x1 + t ** 3 * x1
                by = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * my + 3 * (1 - t) * t * t * my + t ** 3 * y1
                ax.text(bx + 3, by, lab, color="#888", fontsize=9, va="baseline", **mono)
        colors = {"head": "#000", "shape": "#333", "val": "#555", "grad": "#b71c1c", "partial": "#e65100"}
        for n in nodes.values():
            if n.dummy:
                continue
            st = n.style
            rx = st.get("rx", 3)
            ax.add_patch(FancyBboxPatch((n.x, n.y), n.w, n.h,
                                        boxstyle=f"round,pad=0,rounding_size={min(rx, n.h / 2)}",
                                        facecolor=st.get("fill", "#fff"),
                                        edgecolor=st.get("stroke", "#555"), lw=st.get("sw", 1)))
            for i, (text, cls) in enumerate(n.lines):
                ax.text(n.x + PAD_X, n.y + PAD_Y + (i + 1) * LINE_H - 3, text, fontsize=11,
                        color=colors.get(cls, "#000"), va="baseline",
                        fontweight="bold" if cls == "head" else "normal",
                        fontstyle="italic" if cls == "partial" else "normal", **mono)
        ly = self.height - 14
        x = 10
        for fill, stroke, text in LEGEND:
            ax.add_patch(Rectangle((x, ly - 9), 12, 10, facecolor=fill, edgecolor=stroke, lw=1))
            ax.text(x + 16, ly, text, color="#555", fontsize=10, family="sans-serif", va="baseline")
            x += 16 + len(text) * 5.6 + 14
        ax.text(x, ly, "∂: gradient", color="#b71c1c", fontsize=10, family="sans-serif", va="baseline")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", facecolor="white")
        try:  # a 64-colour palette: a third of the bytes, no visible change (Pillow comes with matplotlib)
            from PIL import Image
            small = io.BytesIO()
            buf.seek(0)
            Image.open(buf).convert("RGB").quantize(colors=64).save(small, format="png", optimize=True)
            return small.getvalue()
        except Exception:  # noqa: BLE001 - any Pillow trouble: keep matplotlib's PNG
            return buf.getvalue()

    def _repr_mimebundle_(self, include=None, exclude=None):
        # SVG for trusted front ends; a PNG beside it for untrusted ones
        # (JupyterLab drops SVG from untrusted notebooks) and for viewers
        # that sanitise SVG away. No PNG without matplotlib: SVG and text only.
        bundle = {"text/plain": repr(self), "image/svg+xml": self.svg()}
        png = self.png()
        if png is not None:
            import base64
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle

    def __repr__(self):
        n = sum(1 for v in self.nodes.values() if not v.dummy)
        return f"<tg.inspect.GraphDrawing: {n} nodes{', ' + self.title if self.title else ''}>"

    def dot(self) -> str:
        """The graph in graphviz's DOT language."""
        def q(s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out = ["digraph tapegrad {", "  node [shape=box, fontname=monospace, fontsize=10];"]
        if self.title:
            out.append(f"  label={q(self.title)}; labelloc=t;")
        for n in self.nodes.values():
            if n.dummy:
                continue
            st = n.style
            lab = "\\n".join(t.replace("\\", "\\\\").replace('"', '\\"') for t, _ in n.lines)
            shape = "box, style=\"rounded,filled\"" if st.get("rx", 3) > 5 else "box, style=filled"
            out.append(f'  {q(n.id)} [label="{lab}", shape={shape}, fillcolor={q(st.get("fill", "#fff"))}, '
                       f'color={q(st.get("stroke", "#555"))}, penwidth={st.get("sw", 1)}];')
        for s, d, lab in self.edges:
            out.append(f"  {q(s)} -> {q(d)}" + (f" [label={q(lab)}]" if lab else "") + ";")
        out.append("}")
        return "\n".join(out)

    def save(self, path: str) -> str:
        """Write the drawing: ``.svg`` (default) or ``.dot``; ``.png`` needs
        matplotlib (or else the graphviz ``dot`` program), ``.pdf`` needs
        ``dot``. Returns the path."""
        ext = os.path.splitext(path)[1].lower()
        if ext in ("", ".svg"):
            path = path if ext else path + ".svg"
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.svg())
        elif ext in (".dot", ".gv"):
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.dot())
        elif ext == ".png" and self.png() is not None:
            with open(path, "wb") as f:
                f.write(self.png())
        elif ext in (".png", ".pdf"):
            import shutil
            import subprocess
            exe = shutil.which("dot")
            if not exe:
                raise RuntimeError(f"save: {ext} needs matplotlib (.png) or the graphviz program 'dot'; "
                                   "save as .svg instead")
            subprocess.run([exe, "-T" + ext[1:], "-o", path], input=self.dot().encode(), check=True)
        else:
            raise ValueError(f"save: unknown extension {ext!r} (use .svg or .dot)")
        return path


def _grad_state(stepper, step):
    """From a stepper's history up to `step`: entries that ran, the current
    one, and per tensor id its gradient so far and whether it is complete."""
    if stepper is None:
        return None
    hist = stepper.history
    if step is None:
        step = len(hist) - 1
    if step >= len(hist):
        raise IndexError(f"draw: step {step} has not run (the stepper ran {len(hist)} steps)")
    ran = {rec.entry for rec in hist[: step + 1]}
    current = hist[step].entry if step >= 0 else None
    total, seen, grads = {}, {}, {}
    for e in stepper.order:
        for i, t in enumerate(e.inputs):
            if e.needs_grad[i]:
                total[t._id] = total.get(t._id, 0) + 1
    for rec in hist[: step + 1]:
        for ig in rec.inputs:
            if ig.grad is not None or rec.grad_out is None:
                if ig.tensor.requires_grad:
                    seen[ig.tensor._id] = seen.get(ig.tensor._id, 0) + 1
            if ig.grad is not None:
                g = grads.get(ig.tensor._id)
                grads[ig.tensor._id] = ig.grad if g is None else g + ig.grad
    complete = {k for k in grads if seen.get(k, 0) >= total.get(k, 0)}
    # the seed: the loss's gradient is known from the start
    return {"ran": ran, "current": current, "grads": grads, "complete": complete,
            "grad_out": {rec.entry: rec.grad_out for rec in hist[: step + 1]}}


def draw(t: Tensor, stepper=None, step: int | None = None, max_values: int = MAX_VALUES,
         title: str | None = None) -> GraphDrawing:
    """Draw the graph that computed ``t``: op nodes (``#seq op`` and the
    output's shape) and tensor nodes (leaves, constants) with their shapes;
    tensors with at most ``max_values`` elements show their values and, when
    known, their gradients (``∂``). With ``stepper`` (a
    :class:`~tapegrad.inspect.BackwardStepper`), entries whose VJP ran are
    green and the current one (``stepper.history[step]``, default the last)
    is orange; gradients are those known at that step (orange and italic
    while still partial).

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True); x.name = "x"
    >>> d = tg.inspect.draw((x * x).sum())
    >>> d.svg().startswith("<svg")
    True
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"draw: expected a Tensor, got {type(t).__name__}")
    state = _grad_state(stepper, step)
    entries = reachable_entries(t)
    nodes = {}
    edges = []
    rank = {}
    for e in entries:
        r = 1
        for x in e.inputs:
            if x.grad_fn is not None and x.grad_fn in rank:
                r = max(r, rank[x.grad_fn] + 1)
        rank[e] = r
    # leaves one rank above their first consumer
    leaf_rank = {}
    for e in entries:
        for x in e.inputs:
            if x.grad_fn is None:
                leaf_rank[x._id] = min(leaf_rank.get(x._id, 10**9), rank[e] - 1)

    def tensor_lines(x, known_grad=None, complete=True):
        lines = []
        a = x.detach().numpy()
        if a.size <= max_values:
            lines.append(("= " + _vals(a, max_values), "val"))
        g = known_grad
        if g is None and state is None and x.grad is not None:
            g = x.grad.detach().numpy()
        if g is not None:
            lines.append(("∂ " + _vals(g, max_values) + ("" if complete else " (partial)"),
                          "grad" if complete else "partial"))
        return lines

    def grad_for(x, producer=None):
        if state is None:
            return None, True
        if producer is not None and producer in state["grad_out"]:
            return state["grad_out"][producer], True
        g = state["grads"].get(x._id)
        return g, x._id in state["complete"]

    # insertion order matters for the initial ordering: leaves first, by first use
    for e in entries:
        for i, x in enumerate(e.inputs):
            if x.grad_fn is None and f"t{x._id}" not in nodes:
                k = kind(x)
                g, comp = grad_for(x)
                lines = [(f"{label(x)} ({k})", "head"), (f"{shape_str(x.shape)} {x.dtype}", "shape")]
                lines += tensor_lines(x, g, comp)
                style = {"fill": "#dbe9ff", "stroke": "#1f5fbf"} if k == "leaf" else \
                        {"fill": "#f2f2f2", "stroke": "#999"}
                style["tooltip"] = f"{label(x)}: {k} tensor {shape_str(x.shape)} {x.dtype}"
                nodes[f"t{x._id}"] = _Node(f"t{x._id}", lines, style, rank=leaf_rank[x._id])
    root = t.grad_fn
    for e in entries:
        out = e.output
        lines = [(f"#{e.seq} {op_label(e)}", "head"),
                 (f"→ {label(out) if out is not None else 'out'} {shape_str(e.output_shape)}", "shape")]
        if out is not None:
            g, comp = grad_for(out, producer=e)
            lines += tensor_lines(out, g, comp)
        style = {"fill": "#fff", "stroke": "#555", "rx": 10}
        if state is not None and e in state["ran"]:
            style = {"fill": "#e6f5e6", "stroke": "#2e7d32", "rx": 10}
        if state is not None and e == state["current"]:
            style = {"fill": "#ffd699", "stroke": "#e65100", "rx": 10, "sw": 3}
        if e.inplace:  # recorded by an in-place write (x += y, x[0] = v): a purple frame
            style["stroke"] = "#7b1fa2"
            style["sw"] = max(style.get("sw", 1), 2)
        if e == root:
            style["sw"] = max(style.get("sw", 1), 2)
        style["tooltip"] = f"#{e.seq} {op_label(e)}: {e.forward or 'Python-defined'}"
        nodes[f"e{e.seq}"] = _Node(f"e{e.seq}", lines, style, rank=rank[e])
        for i, x in enumerate(e.inputs):
            src = f"e{x.grad_fn.seq}" if x.grad_fn is not None and x.grad_fn in rank else f"t{x._id}"
            if src not in nodes:  # an input made by an entry not reachable (should not happen)
                continue
            edges.append((src, f"e{e.seq}", str(i) if len(e.inputs) > 1 else ""))
    if not entries:
        lines = [(f"{label(t)} ({kind(t)})", "head"), (f"{shape_str(t.shape)} {t.dtype}", "shape")]
        lines += tensor_lines(t)
        nodes[f"t{t._id}"] = _Node(f"t{t._id}", lines, {"fill": "#f2f2f2", "stroke": "#999"})
    if title is None:
        title = f"graph of {label(t)} {shape_str(t.shape)}: {len(entries)} tape entries"
        if state is not None and state["current"] is not None:
            cur = state["current"]
            idx = stepper.history.index(next(r for r in stepper.history if r.entry == cur))
            title += f" · backward step {idx + 1}/{stepper.size}: #{cur.seq} {op_label(cur)}"
    return GraphDrawing(nodes, edges, title)
