"""tapegrad.inspect: see the gradients.

- :func:`tape_of` / :class:`TapeTable`: the tape as a table (``loss.tape()``,
  ``tg.Tape().table()``);
- :class:`BackwardStepper`: run backward one entry at a time and look at each
  :class:`StepRecord` (``loss.backward_steps()`` iterates over them);
- :func:`draw`: the graph as SVG; :func:`explore`: drawing and steps with
  Previous/Next buttons in a notebook;
- :func:`detect_anomaly` / :class:`AnomalyError`: stop at the first NaN/Inf
  and name the entry and the Python line that made it;
- :func:`check_entry`: gradcheck one entry's VJP (also ``tg.testing.check_entry``);
- :func:`profile`: FLOPs, bytes and time per entry;
- :func:`compare_grads`: your hand-derived gradients against the tape's.

>>> import tapegrad as tg
>>> W = tg.tensor([[1.0, 2.0]], requires_grad=True); W.name = "W"
>>> x = tg.tensor([3.0, 4.0])
>>> loss = (W @ x).sum()
>>> [rec.op for rec in loss.backward_steps()]
['sum', 'matmul']
>>> W.grad.tolist()
[[3.0, 4.0]]
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .checks import EntryCheck, check_entry
from .compare import GradComparison, compare_grads
from .draw import GraphDrawing, draw
from .explore import Explorer, explore
from .profile import ProfileReport, estimate_flops, op_flops, profile
from .stepper import BackwardStepper, Contributions, InputGrad, StepRecord
from .table import TapeTable, tape_of

__all__ = [
    "TapeTable", "tape_of", "BackwardStepper", "StepRecord", "InputGrad", "Contributions",
    "draw", "GraphDrawing", "explore", "Explorer", "detect_anomaly", "set_detect_anomaly",
    "is_anomaly_enabled", "AnomalyError", "check_entry", "EntryCheck", "profile",
    "ProfileReport", "estimate_flops", "op_flops", "compare_grads", "GradComparison",
]
