"""Character-level text data: the makemore names and tinyshakespeare.

Two small corpora for language-model lessons (notebook 05, the transformer
benchmark):

* ``names`` -- 32,033 lower-case first names, one a line (karpathy/makemore; ``wc -l`` says
  32,032 because the last line has no newline);
* ``tinyshakespeare`` -- 1,115,394 characters of Shakespeare's plays
  (karpathy/char-rnn), a 65-character vocabulary.

>>> words = tg.data.text.names()                            # doctest: +SKIP
>>> len(words), words[:3]                                  # doctest: +SKIP
(32033, ['emma', 'olivia', 'ava'])
>>> vocab = tg.data.text.Vocabulary("hello world")
>>> vocab.decode(vocab.encode("hello"))
'hello'

Where a file is looked for, in order (the first place that has it wins):

1. the ``path`` argument: the file itself, or a directory holding it, or a
   directory holding the data set's folder (``names/names.txt``); when given,
   nothing else is tried;
2. the ``TAPEGRAD_DATA`` environment variable, a directory read the same way;
   it may also name another data set's folder beside this one (as for the
   MNIST example, ``TAPEGRAD_DATA=.../data/mnist``): then the sibling folder
   ``.../data/names`` is looked in too;
3. the cache directory: ``cache_dir`` argument, else
   ``$XDG_CACHE_HOME/tapegrad/text``, else ``~/.cache/tapegrad/text``;
4. if ``download=True``, the file is downloaded from its public copy into
   the cache.

Every file is checked against its SHA-256 (:data:`DATASETS`) before it is
used, wherever it was found; a download is written to a temporary file and
renamed only once it verifies. Failures raise :class:`TextDataError` saying
where the loader looked and what to do.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["DATASETS", "TextDataError", "load", "names", "tinyshakespeare", "Vocabulary",
           "context_windows", "default_cache_dir"]

PathLike = Union[str, "os.PathLike[str]"]
ENV_VAR = "TAPEGRAD_DATA"


class _Source(NamedTuple):
    folder: str
    file: str
    size: int
    sha256: str
    url: str


#: The two corpora: folder and file name, size in bytes, SHA-256 and public copy.
DATASETS: Dict[str, _Source] = {
    "names": _Source(
        "names", "names.txt", 228145,
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"),
    "tinyshakespeare": _Source(
        "tinyshakespeare", "input.txt", 1115394,
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"),
}


class TextDataError(RuntimeError):
    """A text corpus could not be found, verified or downloaded."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tapegrad/text`` if that is an absolute path, else
    ``~/.cache/tapegrad/text``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "tapegrad" / "text"
    return Path.home() / ".cache" / "tapegrad" / "text"


def _candidates(root: Path, src: _Source, siblings: bool) -> List[Path]:
    if root.is_file() or root.name == src.file:
        return [root]
    out = [root / src.file, root / src.folder / src.file]
    if siblings:
        out.append(root.parent / src.folder / src.file)
    return out


def _verify(data: bytes, src: _Source, where: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256:
        raise TextDataError(
            f"{where}: SHA-256 {digest} does not match the published {src.sha256} of "
            f"{src.file} ({len(data)} bytes read, {src.size} expected). The file is corrupt or "
            f"not the {src.folder} data set: delete it and load again.")


def _download(src: _Source, cache: Path, timeout: float) -> bytes:
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{src.file}.", suffix=".part", dir=cache)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(src.url, headers={"User-Agent": "tapegrad"})
            with urllib.request.build_opener().open(request, timeout=timeout) as response:
                data = response.read()
            out.write(data)
        _verify(data, src, src.url)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache / src.file)
        tmp = None
        return data
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def load(name: str, path: Optional[PathLike] = None, *, cache_dir: Optional[PathLike] = None,
         download: bool = True, timeout: float = 30.0) -> str:
    """The text of corpus ``name`` (``'names'`` or ``'tinyshakespeare'``),
    found, verified and decoded as UTF-8 (see the module docstring for where
    it is looked for).

    >>> len(tg.data.text.load("tinyshakespeare"))                        # doctest: +SKIP
    1115394
    """
    if name not in DATASETS:
        raise ValueError(f"tapegrad.data.text.load: unknown data set {name!r} "
                         f"(expected one of {sorted(DATASETS)})")
    src = DATASETS[name]
    looked: List[str] = []
    if path is not None:
        places = [(Path(os.path.expanduser(os.fspath(path))), "path argument", False)]
    else:
        places = []
        env = os.environ.get(ENV_VAR)
        if env:
            places.append((Path(os.path.expanduser(env)), f"${ENV_VAR}", True))
        else:
            looked.append(f"${ENV_VAR}: not set")
        cache = Path(os.path.expanduser(os.fspath(cache_dir))) if cache_dir is not None \
            else default_cache_dir()
        places.append((cache, "cache directory", False))
    for root, label, siblings in places:
        for f in _candidates(root, src, siblings):
            if f.is_file():
                data = f.read_bytes()
                _verify(data, src, str(f))
                return data.decode("utf-8")
            looked.append(f"{f} ({label}): not found")
    if path is None and download:
        try:
            return _download(src, cache, timeout).decode("utf-8")
        except TextDataError:
            raise
        except OSError as exc:  # URLError and socket errors are OSErrors
            looked.append(f"{src.url} (download): {exc}")
    hint = (f"Put {src.file} (from {src.url}, SHA-256 {src.sha256}) in one of these places, "
            f"or pass path=.../{src.folder} (or set {ENV_VAR}=<the folder holding "
            f"{src.folder}/>).")
    raise TextDataError(f"tapegrad.data.text: could not find the {name} data set.\n"
                        "Looked in, in order:\n  " + "\n  ".join(looked) + "\n" + hint)


def names(path: Optional[PathLike] = None, **kwargs) -> List[str]:
    """The makemore names data set: 32,033 lower-case first names, in file order.

    >>> words = tg.data.text.names()                         # doctest: +SKIP
    >>> len(words), max(map(len, words))                     # doctest: +SKIP
    (32033, 15)
    """
    return load("names", path, **kwargs).split()


def tinyshakespeare(path: Optional[PathLike] = None, **kwargs) -> str:
    """tinyshakespeare: 1,115,394 characters of Shakespeare's plays, one string."""
    return load("tinyshakespeare", path, **kwargs)


class Vocabulary:
    """A character vocabulary: the sorted set of characters of ``text``
    (plus ``specials`` first, e.g. ``'.'`` as makemore's start/end token),
    with ``encode`` (str -> int64 array) and ``decode`` (ints -> str).

    >>> v = tg.data.text.Vocabulary(["emma", "ava"], specials=".")
    >>> v.chars, len(v)
    ('.aemv', 5)
    >>> v.encode(".ava.").tolist(), v.decode([3, 3, 1])
    ([0, 1, 4, 1, 0], 'mma')
    """

    def __init__(self, text: Union[str, Iterable[str]], specials: str = ""):
        body = text if isinstance(text, str) else "".join(text)
        chars = sorted(set(body) - set(specials))
        self.chars = "".join(dict.fromkeys(specials)) + "".join(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} characters: {self.chars!r})"

    def encode(self, s: str) -> np.ndarray:
        try:
            return np.fromiter((self.stoi[c] for c in s), dtype=np.int64, count=len(s))
        except KeyError as exc:
            raise ValueError(f"Vocabulary.encode: character {exc.args[0]!r} is not in the "
                             f"vocabulary {self.chars!r}") from None

    def decode(self, ids: Union[Sequence[int], np.ndarray]) -> str:
        a = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids).reshape(-1)
        bad = [int(i) for i in a if not 0 <= int(i) < len(self)]
        if bad:
            raise ValueError(f"Vocabulary.decode: ids {bad[:5]} are outside 0..{len(self) - 1}")
        return "".join(self.itos[int(i)] for i in a)


def context_windows(words: Sequence[str], block_size: int, vocab: Vocabulary,
                    end: str = ".") -> Tuple[np.ndarray, np.ndarray]:
    """makemore's training pairs: for every word and every position, the
    ``block_size`` previous characters (padded with ``end``) and the next
    character (``end`` after the last). Returns ``X`` (n, block_size) and
    ``Y`` (n,), int64.

    >>> v = tg.data.text.Vocabulary(["ab"], specials=".")
    >>> X, Y = tg.data.text.context_windows(["ab"], 2, v)
    >>> X.tolist(), Y.tolist()
    ([[0, 0], [0, 1], [1, 2]], [1, 2, 0])
    """
    if block_size < 1:
        raise ValueError(f"context_windows: block_size must be >= 1, got {block_size}")
    if end not in vocab.stoi:
        raise ValueError(f"context_windows: the end token {end!r} is not in the vocabulary")
    pad = vocab.stoi[end]
    xs, ys = [], []
    for w in words:
        ctx = [pad] * block_size
        for c in vocab.encode(w).tolist() + [pad]:
            xs.append(ctx)
            ys.append(c)
            ctx = ctx[1:] + [c]
    return (np.array(xs, dtype=np.int64).reshape(-1, block_size), np.array(ys, dtype=np.int64))
