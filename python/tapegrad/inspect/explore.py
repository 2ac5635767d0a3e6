"""explore(loss): the drawing and one backward step at a time, with
Previous / Next buttons and a slider (ipywidgets), or a static page listing
every step when ipywidgets is not installed."""
from __future__ import annotations

from .._C import Tensor
from .._display import esc, label, op_label, reachable_entries
from .draw import draw
from .stepper import BackwardStepper

HINT = ("Static view: every step is listed below. For Previous/Next buttons and a slider, "
        "install ipywidgets (pip install ipywidgets) and run the cell again.")
SAVED_HINT = ("Saved view: every step is listed below (click a step to open it). Run the cell "
              "for Previous/Next buttons and a slider.")


class Explorer:
    """What :func:`explore` returns: ``stepper`` (finished, with a record of
    every step in ``stepper.history``), ``drawing(k)`` (the graph after step
    k, k = 0 before any step), ``page(k)`` (drawing and record as HTML),
    ``widget`` (the ipywidgets box, or None) and ``static_html()``.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> ex = tg.inspect.explore((x * 3).sum(), widget=False)
    >>> ex.n, ex.drawing(1).svg()[:4], "<details>" in ex.static_html()
    (2, '<svg', True)
    """

    def __init__(self, loss, stepper, use_widget):
        self.loss = loss
        self.stepper = stepper
        self.n = len(stepper.history)
        self.widget = self._make_widget() if use_widget else None

    def drawing(self, k: int):
        """The graph after k steps (0: before backward starts)."""
        return draw(self.loss, self.stepper, step=k - 1)

    def record_html(self, k: int) -> str:
        if k == 0:
            return (f"<p>Before backward: the gradient of {esc(label(self.loss))} with respect to "
                    f"itself is 1. Press <b>Next</b> to run the first VJP "
                    f"(#{self.stepper.order[0].seq} {esc(op_label(self.stepper.order[0]))}).</p>"
                    if self.n else "<p>Nothing to run.</p>")
        return self.stepper.history[k - 1]._repr_html_()

    def page(self, k: int, image: bool = False) -> str:
        """Drawing and record of step k as HTML; ``image=True`` draws the
        graph as a PNG ``<img>`` (when matplotlib is installed) instead of
        inline SVG."""
        return (f"<div style='overflow-x:auto'>{self._picture(self.drawing(k), image)}</div>"
                + self.record_html(k))

    @staticmethod
    def _picture(d, image):
        # inline SVG is dropped by sanitising viewers (untrusted JupyterLab,
        # GitHub), leaving its text as "soup"; a PNG <img> survives them
        png = d.png(scale=1.25) if image else None
        if png is None:
            return d.svg()
        import base64
        return (f"<img src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}' "
                f"width='{d.width:.0f}' style='max-width:none' alt='{esc(d.title)}'>")

    def _make_widget(self):
        import ipywidgets as w
        prev = w.Button(description="◀ Previous", layout=w.Layout(width="110px"))
        nxt = w.Button(description="Next ▶", layout=w.Layout(width="110px"))
        slider = w.IntSlider(value=0, min=0, max=self.n, description="step",
                             continuous_update=False)
        pic = w.HTML()
        rec = w.HTMLMath()

        def show(change=None):
            k = slider.value
            pic.value = f"<div style='overflow-x:auto'>{self.drawing(k).svg()}</div>"
            rec.value = self.record_html(k)
            prev.disabled = k == 0
            nxt.disabled = k == self.n

        prev.on_click(lambda b: setattr(slider, "value", max(0, slider.value - 1)))
        nxt.on_click(lambda b: setattr(slider, "value", min(self.n, slider.value + 1)))
        slider.observe(show, names="value")
        show()
        self._slider = slider
        return w.VBox([w.HBox([prev, nxt, slider]), pic, rec])

    def static_html(self, hint: bool = True, image: bool = True) -> str:
        """Every step as a collapsible section: drawing and record. With
        ``image=True`` (the default) the drawings are PNG images when
        matplotlib is installed, so that viewers which strip SVG (an
        untrusted notebook, GitHub) still show them; inline SVG otherwise."""
        parts = []
        if hint:
            text = HINT if self.widget is None else SAVED_HINT
            parts.append(f"<p style='color:#555'><i>{esc(text)}</i></p>")
        parts.append(f"<div style='overflow-x:auto'>{self._picture(self.drawing(self.n), image)}</div>")
        for k in range(1, self.n + 1):
            rec = self.stepper.history[k - 1]
            body = self.page(k, image) if self.n <= 40 else self.record_html(k)
            parts.append(f"<details><summary>step {k}/{self.n}: #{rec.seq} {esc(rec.label)}</summary>"
                         f"{body}</details>")
        return "".join(parts)

    def _repr_html_(self):
        return self.static_html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        # a widget where a kernel is running, the static page where there is
        # none (nbconvert, GitHub: keep text/html when saving, see
        # notebooks/src/nbtools.py), and the finished graph as a PNG for
        # front ends that show only "safe" outputs
        bundle = {"text/plain": repr(self), "text/html": self.static_html()}
        png = self.drawing(self.n).png()
        if png is not None:
            import base64
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        if self.widget is not None and hasattr(self.widget, "_repr_mimebundle_"):
            wb = self.widget._repr_mimebundle_()
            if isinstance(wb, tuple):
                wb = wb[0]
            bundle.update({k: v for k, v in wb.items() if k != "text/plain"})
        return bundle

    def __repr__(self):
        return f"<tg.inspect.Explorer: backward of {label(self.loss)} in {self.n} steps>"


def explore(loss: Tensor, gradient=None, widget: bool | None = None) -> Explorer:
    """Step through the backward pass of ``loss`` in a notebook: the graph
    (current entry highlighted) and the current step's record, with
    Previous/Next buttons and a slider.

    Backward runs once, with ``retain_graph=True``, keeping a record of every
    step; Previous and Next move through those records (the same as
    re-running backward from the start up to step k). Every ``.grad`` is put
    back as it was afterwards, and the graph is kept, so ``loss.backward()``
    still works. Without ipywidgets (or with ``widget=False``) the result is
    a static page listing every step.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> ex = tg.inspect.explore((w * w).sum(), widget=False)
    >>> ex.n, w.grad is None
    (2, True)
    """
    if widget is None:
        try:
            import ipywidgets  # noqa: F401
            widget = True
        except ImportError:
            widget = False
    leaves = {}
    for e in reachable_entries(loss):
        for x in e.inputs:
            if x.grad_fn is None and x.requires_grad:
                leaves[x._id] = (x, None if x.grad is None else x.grad.clone())
    stepper = BackwardStepper(loss, gradient, retain_graph=True)
    try:
        stepper.finish()
    finally:
        for x, g in leaves.values():
            x.grad = g
    return Explorer(loss, stepper, widget)
