"""``tg.save`` and ``tg.load``: checkpoints in a format that never runs code.

PyTorch's ``torch.save`` writes a pickle, and unpickling can call any Python
function, so loading a checkpoint from someone else can run their code.
tapegrad writes NumPy's ``.npz`` format instead (a zip of ``.npy`` arrays)
and loads it with ``allow_pickle=False``:

- every tensor and ndarray is one ``.npy`` member (``t0``, ``t1``, ...);
- the structure around them (dicts, lists, tuples, numbers, strings, bools,
  None) is a JSON manifest stored as a ``uint8`` array under the key
  ``__tapegrad__``.

Nothing in the file is ever unpickled: a file holding pickled data, or a
manifest naming an unknown kind of object, raises ``ValueError``. The file
can be read without tapegrad (``np.load(path)`` and ``json.loads``), which
``docs/coming-from-pytorch.md`` shows.

>>> import io, tapegrad as tg
>>> model = tg.nn.Linear(3, 2)
>>> buf = io.BytesIO()
>>> tg.save({"model": model.state_dict(), "epoch": 3}, buf)
>>> _ = buf.seek(0)
>>> ckpt = tg.load(buf)
>>> ckpt["epoch"], list(ckpt["model"]), ckpt["model"]["weight"].shape
(3, ['weight', 'bias'], (2, 3))
"""
from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections import OrderedDict
from typing import Any

import numpy as np

from . import _C
from ._C import Tensor
from ._parameter import Parameter

__all__ = ["save", "load"]

_MANIFEST = "__tapegrad__"
_FORMAT = "tapegrad.save"
_VERSION = 1


def _describe(path: str) -> str:
    return path or "the object"


class _Writer:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.memo: dict[int, str] = {}   # id(tensor) -> key: a tensor saved twice is stored once
        self.keep: list = []             # keeps memoised objects alive while saving
        self.open: set[int] = set()      # containers being written (to catch cycles)

    def array(self, a: np.ndarray, obj, where: str) -> str:
        if a.dtype.hasobject:
            raise TypeError(f"tg.save: {where} is an ndarray of Python objects (dtype=object), "
                            f"which can only be stored by pickling; convert it to a numeric, bool "
                            f"or string dtype")
        if id(obj) in self.memo:
            return self.memo[id(obj)]
        key = f"t{len(self.arrays)}"
        self.arrays[key] = a  # np.save writes any layout (ascontiguousarray would make 0-d arrays 1-d)
        self.memo[id(obj)] = key
        self.keep.append(obj)
        return key

    def node(self, obj: Any, where: str) -> dict:
        # bool before int: bool is a subclass of int
        if obj is None:
            return {"type": "none"}
        if isinstance(obj, bool):
            return {"type": "bool", "value": bool(obj)}
        if isinstance(obj, Tensor):
            key = self.array(obj.detach().numpy(), obj, where)
            return {"type": "tensor", "key": key, "requires_grad": bool(obj.requires_grad),
                    "parameter": isinstance(obj, Parameter)}
        if isinstance(obj, np.ndarray):
            return {"type": "ndarray", "key": self.array(obj, obj, where)}
        if isinstance(obj, np.generic):  # np.float32(1.5), np.int64(3): kept as NumPy scalars
            return {"type": "numpy_scalar", "key": self.array(np.asarray(obj), np.asarray(obj), where)}
        if isinstance(obj, int):
            return {"type": "int", "value": obj}
        if isinstance(obj, float):
            # repr round-trips every float exactly, including inf and nan
            return {"type": "float", "value": repr(obj)}
        if isinstance(obj, str):
            return {"type": "str", "value": obj}
        if isinstance(obj, np.dtype):  # tg.float32 & co. are NumPy dtypes
            return {"type": "dtype", "value": np.dtype(obj).str}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self.open:
                raise TypeError(f"tg.save: {_describe(where)} contains itself; a structure with "
                                f"a cycle cannot be saved")
            self.open.add(id(obj))
            try:
                return self.container(obj, where)
            finally:
                self.open.discard(id(obj))
        hint = ""
        if hasattr(obj, "state_dict"):
            hint = "; save its state_dict() instead (tg.save(x.state_dict(), path))"
        raise TypeError(f"tg.save: cannot save {_describe(where)} of type {type(obj).__name__}: "
                        f"tapegrad saves tensors, ndarrays, numbers, strings, bools, None and "
                        f"dicts/lists/tuples of them (never pickled objects){hint}")

    def container(self, obj, where: str) -> dict:
        if isinstance(obj, dict):
            kind = "ordered_dict" if isinstance(obj, OrderedDict) else "dict"
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"tg.save: {_describe(where)} has a key of type "
                                    f"{type(k).__name__} ({k!r}); keys must be str or int")
                items.append([k, self.node(v, f"{where}[{k!r}]")])
            return {"type": kind, "items": items}
        # a list or tuple subclass (a namedtuple, say) is saved as a plain list or tuple
        return {"type": "tuple" if isinstance(obj, tuple) else "list",
                "items": [self.node(v, f"{where}[{i}]") for i, v in enumerate(obj)]}


def save(obj: Any, f) -> None:
    """Save ``obj`` to ``f`` (a path, a ``pathlib.Path`` or a binary file
    object) without pickling.

    ``obj`` may be a tensor, an ndarray, a number, a string, a bool, None, or
    dicts (str or int keys), lists and tuples of these nested to any depth:
    model ``state_dict()``\\ s, optimizer ``state_dict()``\\ s and checkpoints
    that combine them. Tensors keep their dtype, shape, ``requires_grad`` and
    whether they are a ``Parameter``; a tensor that appears twice is stored
    once and loads as one object. Anything else (a model, a function, an
    ndarray of Python objects) raises ``TypeError`` naming where it is.

    The path is used as given (``"model.pt"`` is not renamed ``.npz``).

    >>> import io, tapegrad as tg
    >>> buf = io.BytesIO()
    >>> tg.save({"w": tg.ones(2, 3), "step": 10, "name": "run-1"}, buf)
    >>> _ = buf.seek(0)
    >>> out = tg.load(buf)
    >>> out["w"].shape, out["step"], out["name"]
    ((2, 3), 10, 'run-1')
    """
    w = _Writer()
    try:
        root = w.node(obj, "")
    except RecursionError:
        raise ValueError("tg.save: the object is nested too deeply to save") from None
    manifest = json.dumps({"format": _FORMAT, "version": _VERSION, "root": root},
                          separators=(",", ":"), allow_nan=False)
    arrays = dict(w.arrays)
    arrays[_MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:  # np.savez(path) would append ".npz" to the name
            np.savez(fh, **arrays)
    else:
        if not hasattr(f, "write"):
            raise TypeError(f"tg.save: f must be a path or a binary file object, got "
                            f"{type(f).__name__}")
        np.savez(f, **arrays)


class _Reader:
    def __init__(self, z, source: str):
        self.z, self.source = z, source
        self.memo: dict[str, Any] = {}

    def bad(self, msg: str) -> ValueError:
        return ValueError(f"tg.load: {self.source} is not a valid tapegrad file: {msg}")

    def array(self, key, manifest: bool = False) -> np.ndarray:
        if not isinstance(key, str) or (key == _MANIFEST) != manifest or key not in self.z.files:
            raise self.bad(f"the manifest refers to an array {key!r} that is not in the file")
        fmt = np.lib.format
        try:
            # read the .npy header first: refuse object arrays (their data is a
            # pickle) and shapes larger than the member's data before NumPy
            # allocates anything
            info = self.z.zip.getinfo(key + ".npy")
            with self.z.zip.open(info) as fh:
                version = fmt.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(fh)
                else:
                    raise self.bad(f"array {key!r} uses .npy format version {version}")
            if dtype.hasobject:
                raise ValueError(f"tg.load: array {key!r} in {self.source} holds pickled Python "
                                 f"objects; tapegrad never unpickles (unpickling can run code)")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size:
                raise self.bad(f"array {key!r} declares shape {shape} of {dtype} ({nbytes} bytes) "
                               f"but holds {info.file_size} bytes")
            return self.z[key]
        except ValueError as e:
            if str(e).startswith("tg.load"):
                raise
            raise self.bad(f"array {key!r} cannot be read ({e})") from None
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, SyntaxError,
                UnicodeDecodeError, TypeError, OverflowError,
                NotImplementedError, RuntimeError) as e:  # zipfile: unknown method, encrypted
            raise self.bad(f"array {key!r} cannot be read ({type(e).__name__}: {e})") from None

    def node(self, n) -> Any:
        if not isinstance(n, dict) or "type" not in n:
            raise self.bad(f"malformed entry {str(n)[:80]!r}")
        t = n["type"]
        if t == "none":
            return None
        if t in ("bool", "int", "str"):
            v = n.get("value")
            if type(v) is not {"bool": bool, "int": int, "str": str}[t]:
                raise self.bad(f"{'an' if t == 'int' else 'a'} {t} entry holds {v!r}")
            return v
        if t == "float":
            try:
                return float(n["value"])
            except (KeyError, TypeError, ValueError):
                raise self.bad(f"a float entry holds {n.get('value')!r}") from None
        if t == "dtype":
            return np.dtype(str(n.get("value")))
        if t in ("tensor", "ndarray", "numpy_scalar"):
            key = n.get("key")
            if t == "tensor" and key in self.memo:
                return self.memo[key]
            a = self.array(key)
            if t == "ndarray":
                return a
            if t == "numpy_scalar":
                return a[()]
            return self.tensor(key, a, n)
        if t in ("dict", "ordered_dict"):
            out = OrderedDict() if t == "ordered_dict" else {}
            for item in n.get("items", ()):
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))):
                    raise self.bad(f"malformed dict item {str(item)[:80]!r}")
                out[item[0]] = self.node(item[1])
            return out
        if t in ("list", "tuple"):
            items = [self.node(v) for v in n.get("items", ())]
            return items if t == "list" else tuple(items)
        raise self.bad(f"unknown entry type {t!r}")

    def tensor(self, key, a: np.ndarray, n: dict) -> Tensor:
        if a.dtype not in (np.float32, np.float64, np.int64, np.bool_, np.int32, np.uint8):
            raise self.bad(f"tensor {key!r} has dtype {a.dtype}; tensors are float32, float64, "
                           f"int64, int32, uint8 or bool")
        t = _C.from_numpy(np.array(a, copy=True))  # owns its memory, independent of the file
        if n.get("parameter"):
            t = Parameter(t, requires_grad=bool(n.get("requires_grad", True)))
        elif n.get("requires_grad"):
            t.requires_grad = True
        self.memo[key] = t
        return t


def load(f, map_location=None, weights_only: bool = True) -> Any:
    """Load an object saved by :func:`save` from a path, a ``pathlib.Path``
    or a binary file object, without unpickling anything.

    ``map_location`` and ``weights_only`` are accepted for PyTorch scripts:
    tapegrad has only the CPU (``None`` and ``"cpu"`` are allowed), and it
    only ever loads data (``weights_only=False`` is refused, since it would
    mean unpickling). A file that is not a tapegrad file -- a PyTorch
    checkpoint, a plain pickle, an ``.npz`` without the manifest -- raises
    ``ValueError`` saying so.

    >>> import io, tapegrad as tg
    >>> buf = io.BytesIO()
    >>> tg.save([tg.arange(3), (1.5, None, True)], buf)
    >>> _ = buf.seek(0)
    >>> tg.load(buf)
    [tensor([0, 1, 2], shape=(3,), dtype=int64), (1.5, None, True)]
    """
    if map_location not in (None, "cpu"):
        raise ValueError(f"tg.load: map_location={map_location!r}: tapegrad runs on the CPU only "
                         f"(use None or 'cpu')")
    if not weights_only:
        raise ValueError("tg.load: weights_only=False would mean unpickling, which can run code; "
                         "tapegrad files hold data only, so loading always works with the default")
    source = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else "the file object"
    try:
        z = np.load(f, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):  # np.load's answer to anything that is not .npy or .npz
            raise ValueError(f"tg.load: {source} is not a tapegrad file: it is neither an .npz "
                             f"nor an .npy file. If it is a pickle (such as an old torch.save "
                             f"checkpoint), tapegrad will not unpickle it, since unpickling can "
                             f"run arbitrary code: convert it to tensors in the program that "
                             f"made it and tg.save those") from None
        raise ValueError(f"tg.load: {source} is not a tapegrad file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"tg.load: {source} is not a tapegrad file ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"tg.load: {source} is a single NumPy array (.npy), not a tapegrad file; "
                         f"read it with np.load")
    with z:
        if _MANIFEST not in z.files:
            names = [n for n in z.zip.namelist()][:5]
            what = "a PyTorch checkpoint (a zip holding a pickle)" if any(
                n.endswith(".pkl") for n in z.zip.namelist()) else "an .npz without a manifest"
            raise ValueError(f"tg.load: {source} is {what}, not a file written by tg.save "
                             f"(members: {names}); tapegrad does not unpickle. An .npz of plain "
                             f"arrays can be read with np.load(path, allow_pickle=False)")
        reader = _Reader(z, source)
        raw = reader.array(_MANIFEST, manifest=True)
        try:
            manifest = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise reader.bad(f"the manifest is not JSON ({e})") from None
        except RecursionError:
            raise reader.bad("the manifest is nested too deeply") from None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise reader.bad("the manifest does not name the tapegrad format")
        if manifest.get("version") != _VERSION:
            raise reader.bad(f"format version {manifest.get('version')!r}; this tapegrad reads "
                             f"version {_VERSION}")
        try:
            return reader.node(manifest.get("root"))
        except RecursionError:
            raise reader.bad("the structure is nested too deeply") from None
