"""MNIST handwritten digits, loaded into NumPy arrays.

This module finds, verifies and parses the four original MNIST files (IDX
format, gzipped or raw) and returns them exactly like
``keras.datasets.mnist.load_data()`` does::

    >>> from tapegrad.data import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, y_train.shape, y_train.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'), (60000,), dtype('uint8'))

Where the files are looked for, in order:

1. the ``path`` argument (a directory, or a parent holding ``mnist/``);
   when given, nothing else is tried;
2. the ``TAPEGRAD_DATA`` environment variable (same rules);
3. the cache directory: ``cache_dir`` argument, else
   ``$XDG_CACHE_HOME/tapegrad/mnist``, else ``~/.cache/tapegrad/mnist``;
4. if ``download=True``, the files missing from the cache are downloaded from
   :data:`MIRRORS` into the cache directory.

Every file is verified against the SHA-256 of its *decompressed* content
(:data:`SHA256`), so a gzip file that was recompressed is still accepted.
All failures raise :class:`MNISTError` (or one of its subclasses) with a
message saying where the loader looked, what was wrong and what to do.

Only the standard library and NumPy are used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = [
    "FILES",
    "SHA256",
    "MIRRORS",
    "ENV_VAR",
    "MNISTError",
    "MNISTNotFoundError",
    "MNISTFormatError",
    "MNISTChecksumError",
    "MNISTDownloadError",
    "default_cache_dir",
    "load_data",
    "read_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the environment variable naming a directory that holds the files
#: (or a parent directory holding an ``mnist/`` subdirectory).
ENV_VAR = "TAPEGRAD_DATA"

#: The four MNIST files, by role, without the ``.gz`` suffix. On disk each may
#: be gzipped (``NAME.gz``, preferred when both exist) or raw IDX (``NAME``).
FILES: Dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the *decompressed* content of each original file, by file name
#: (as in :data:`FILES`). The gzip bytes themselves are never verified: a
#: recompressed ``.gz`` with the original content is accepted.
SHA256: Dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Base URLs tried in order when downloading; ``NAME.gz`` is appended. Read at
#: call time, so it may be replaced or monkeypatched; ``load_data(mirrors=...)``
#: overrides it for one call.
MIRRORS: List[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: Default per-socket-operation timeout of a download, in seconds.
DEFAULT_TIMEOUT = 30.0

_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_USER_AGENT = "tapegrad-mnist/1.0 (Python urllib)"
_CHUNK = 1 << 16

# IDX data-type codes (third byte of the magic number); multi-byte types are
# big-endian in the file.
_IDX_DTYPES: Dict[int, Tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype(np.uint8)),
    0x09: ("signed byte", np.dtype(np.int8)),
    0x0B: ("short", np.dtype(">i2")),
    0x0C: ("int", np.dtype(">i4")),
    0x0D: ("float", np.dtype(">f4")),
    0x0E: ("double", np.dtype(">f8")),
}


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class MNISTError(RuntimeError):
    """Base class of every error raised by :mod:`tapegrad.data.mnist`."""


class MNISTNotFoundError(MNISTError):
    """The files are not where they were looked for (and were not downloaded)."""


class MNISTFormatError(MNISTError):
    """A file is not a valid IDX (or gzip) file, or the four files disagree."""


class MNISTChecksumError(MNISTError):
    """The SHA-256 of a file's decompressed content is not the expected one."""


class MNISTDownloadError(MNISTError):
    """A file could not be downloaded from any mirror.

    Attributes
    ----------
    attempts : list of (str, BaseException)
        Every URL tried, in order, with the error it gave.
    """

    def __init__(self, message: str, attempts: Sequence[Tuple[str, BaseException]] = ()):
        super().__init__(message)
        self.attempts = list(attempts)


# --------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------


def _describe_magic(magic: int) -> str:
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    name = _IDX_DTYPES.get(code, ("unknown type",))[0]
    return f"0x{magic:08X} (type 0x{code:02X} {name}, {ndim} dimension{'s' if ndim != 1 else ''})"


def _gunzip(data: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise MNISTFormatError(
            f"{where}: not a valid gzip file ({type(exc).__name__}: {exc}); "
            f"it is probably truncated or corrupt. Replace it with a good copy."
        ) from exc


def _maybe_gunzip(data: bytes, where: str) -> bytes:
    if data[:2] == _GZIP_MAGIC:
        return _gunzip(data, where)
    return data


def _parse_idx(data: bytes, where: str, expected_magic: Optional[int] = None) -> np.ndarray:
    """Parse decompressed IDX bytes; ``where`` names the source in messages."""
    if len(data) < 4:
        raise MNISTFormatError(
            f"{where}: too short to be an IDX file ({len(data)} bytes, the header "
            f"alone needs at least 4)."
        )
    (magic,) = struct.unpack(">i", data[:4])
    magic &= 0xFFFFFFFF
    if expected_magic is not None and magic != expected_magic:
        exp_nd, got_nd = expected_magic & 0xFF, magic & 0xFF
        what = "bad magic number"
        if magic >> 8 == expected_magic >> 8 and exp_nd != got_nd:
            what = f"wrong number of dimensions ({got_nd}, expected {exp_nd}): bad magic number"
        raise MNISTFormatError(
            f"{where}: {what} {_describe_magic(magic)}, expected "
            f"{_describe_magic(expected_magic)}. The file is not the expected IDX file "
            f"(wrong file, wrong name, or corrupt)."
        )
    if magic >> 16 != 0:
        raise MNISTFormatError(
            f"{where}: not an IDX file: bad magic number 0x{magic:08X} (the first two "
            f"bytes must be zero)."
        )
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if code not in _IDX_DTYPES:
        raise MNISTFormatError(
            f"{where}: bad magic number 0x{magic:08X}: unknown IDX data type code "
            f"0x{code:02X} (known: {', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)})."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTFormatError(
            f"{where}: truncated header: magic {_describe_magic(magic)} needs "
            f"{header} header bytes, the file has {len(data)}."
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code][1]
    expected_len = dtype.itemsize
    for d in dims:
        expected_len *= d
    actual_len = len(data) - header
    shape_txt = "x".join(str(d) for d in dims) or "scalar"
    if actual_len < expected_len:
        raise MNISTFormatError(
            f"{where}: truncated payload: the header declares shape {shape_txt} = "
            f"{expected_len} bytes of data, but only {actual_len} follow the "
            f"{header}-byte header ({expected_len - actual_len} missing)."
        )
    if actual_len > expected_len:
        raise MNISTFormatError(
            f"{where}: {actual_len - expected_len} bytes of trailing data: the header "
            f"declares shape {shape_txt} = {expected_len} bytes of data, but "
            f"{actual_len} follow the {header}-byte header."
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected_len // dtype.itemsize, offset=header)
    # Copy into a fresh, writable, C-contiguous array in native byte order that
    # owns its memory (it does not pin the file's bytes).
    return np.array(arr.reshape(dims), dtype=dtype.newbyteorder("="), order="C", copy=True)


def read_idx(source: Union[PathLike, bytes, bytearray, memoryview]) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a NumPy array.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray or memoryview
        A file path, or the file's content. Gzip compression is detected from
        the content (the ``1f 8b`` signature), not from the file name.

    Returns
    -------
    numpy.ndarray
        An array of the shape given by the header and the dtype given by the
        magic number (``uint8`` for MNIST; multi-byte types are converted to
        native byte order). It is a fresh copy: writable, C-contiguous, and it
        owns its memory.

    Raises
    ------
    MNISTFormatError
        The file is not valid gzip, the magic number is not an IDX one, or the
        payload is shorter or longer than the product of the dimensions.
    OSError
        ``source`` is a path that cannot be read.

    Notes
    -----
    The IDX format is a big-endian int32 magic number ``0x0000TTNN`` (``TT`` the
    data type, ``0x08`` for unsigned bytes; ``NN`` the number of dimensions),
    one big-endian int32 per dimension, then the data in C order.

    Examples
    --------
    >>> import struct
    >>> from tapegrad.data.mnist import read_idx
    >>> raw = struct.pack(">iii", 0x00000802, 2, 3) + bytes(range(6))
    >>> read_idx(raw)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        where = f"<{len(source)} bytes>"
        data = bytes(source)
    else:
        where = os.fspath(source)
        data = Path(where).read_bytes()
    return _parse_idx(_maybe_gunzip(data, where), where)


# --------------------------------------------------------------------------
# Locating files
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Return the default cache directory.

    ``$XDG_CACHE_HOME/tapegrad/mnist`` if ``XDG_CACHE_HOME`` is set to an
    absolute path, else ``~/.cache/tapegrad/mnist``.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "tapegrad" / "mnist"
    return Path.home() / ".cache" / "tapegrad" / "mnist"


def _file_list(sep: str = ", ") -> str:
    names = [f"{n}.gz" for n in FILES.values()]
    return sep.join(names[:-1]) + " and " + names[-1]


def _scan(directory: Path) -> Tuple[Dict[str, Optional[Path]], str]:
    """Find each file in ``directory``; return {name: path or None} and a status."""
    found: Dict[str, Optional[Path]] = {n: None for n in FILES.values()}
    if not directory.exists():
        return found, "does not exist"
    if not directory.is_dir():
        return found, "is not a directory"
    for name in FILES.values():
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found[name] = candidate
                break
    missing = [n for n, p in found.items() if p is None]
    if not missing:
        return found, "all 4 files present"
    if len(missing) == len(FILES):
        return found, "none of the 4 files present"
    return found, "missing " + ", ".join(f"{n}[.gz]" for n in missing)


def _try_dirs(
    root: Path, label: str, looked: List[str]
) -> Optional[Dict[str, Path]]:
    """Look in ``root`` then ``root/mnist``; return the files of the first complete one."""
    for directory, what in ((root, label), (root / "mnist", f"{label}, mnist/ subdirectory")):
        found, status = _scan(directory)
        looked.append(f"{directory} ({what}): {status}")
        if all(p is not None for p in found.values()):
            return {n: p for n, p in found.items() if p is not None}
        if status in ("does not exist", "is not a directory"):
            break  # no point looking for a subdirectory
    return None


def _looked_text(looked: Sequence[str]) -> str:
    return "Looked in, in order:\n" + "\n".join(
        f"  {i}. {entry}" for i, entry in enumerate(looked, 1)
    )


def _fix_hint() -> str:
    return (
        f"To fix this, set {ENV_VAR}=/path/to/mnist or pass path=/path/to/mnist; "
        f"the directory must hold {_file_list()} (or the same names without .gz, "
        f"as raw IDX files)."
    )


# --------------------------------------------------------------------------
# Loading and verifying one file
# --------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sha(name: str, content: bytes, where: str, advice: str) -> None:
    expected = SHA256[name]
    actual = _sha256(content)
    if actual != expected:
        raise MNISTChecksumError(
            f"{where}: checksum mismatch: SHA-256 of the decompressed content is "
            f"{actual}, expected {expected} (the original {name}). {advice}"
        )


def _read_member(path: Path, name: str, verify: bool, advice: str) -> np.ndarray:
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MNISTError(f"{where}: cannot read file: {exc}. {advice}") from exc
    content = _maybe_gunzip(data, where)
    if verify:
        _check_sha(name, content, where, advice)
    return _parse_member(content, name, where)


def _parse_member(content: bytes, name: str, where: str) -> np.ndarray:
    magic = _IMAGES_MAGIC if "images" in name else _LABELS_MAGIC
    return _parse_idx(content, where, expected_magic=magic)


def _assemble(
    arrays: Dict[str, np.ndarray], wheres: Dict[str, str]
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Cross-check the four arrays and return them in Keras order."""
    out = []
    for split in ("train", "test"):
        xn, yn = FILES[f"{split}_images"], FILES[f"{split}_labels"]
        x, y = arrays[xn], arrays[yn]
        if x.shape[0] != y.shape[0]:
            raise MNISTFormatError(
                f"count mismatch between images and labels: {wheres[xn]} holds "
                f"{x.shape[0]} images but {wheres[yn]} holds {y.shape[0]} labels. "
                f"The files do not belong together; replace them with the originals."
            )
        if y.size and int(y.max()) > 9:
            bad = int(np.argmax(y > 9))
            raise MNISTFormatError(
                f"{wheres[yn]}: label out of range: label[{bad}] = {int(y[bad])}, "
                f"labels must be 0..9. Replace the file with the original."
            )
        out.append((x, y))
    xtr, xte = out[0][0], out[1][0]
    if xtr.shape[1:] != xte.shape[1:]:
        raise MNISTFormatError(
            f"image size mismatch: {wheres[FILES['train_images']]} holds "
            f"{xtr.shape[1]}x{xtr.shape[2]} images but {wheres[FILES['test_images']]} "
            f"holds {xte.shape[1]}x{xte.shape[2]} images."
        )
    return out[0], out[1]


def _load_files(
    files: Dict[str, Path], verify: bool, advice: str
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    arrays = {n: _read_member(p, n, verify, advice) for n, p in files.items()}
    return _assemble(arrays, {n: str(p) for n, p in files.items()})


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------


def _open_url(url: str, timeout: float):
    """Open ``url`` with urllib (honouring the *_proxy environment variables)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    # A fresh opener so that proxy settings are read from the environment now.
    return urllib.request.build_opener().open(request, timeout=timeout)


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(f"tapegrad.data.mnist: {message}", file=sys.stderr, flush=True)


def _fetch_one(url: str, name: str, cache: Path, timeout: float) -> Tuple[Path, bytes]:
    """Download ``url`` into ``cache`` atomically; return (final path, content).

    The bytes go to a temporary file in ``cache``; only once the SHA-256 of the
    decompressed content matches is it renamed onto its final name. The
    temporary file is removed on any failure.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp: Optional[str] = tmp_name
    try:
        with os.fdopen(fd, "wb") as out:
            with _open_url(url, timeout) as response:
                header = response.headers.get("Content-Length")
                total = int(header) if header and header.strip().isdigit() else None
                received = 0
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
            if total is not None and received != total:
                raise MNISTDownloadError(
                    f"connection closed after {received} of {total} bytes (truncated download)"
                )
        data = Path(tmp_name).read_bytes()
        gzipped = data[:2] == _GZIP_MAGIC
        content = _gunzip(data, url) if gzipped else data
        _check_sha(name, content, url, "The download is corrupt.")
        final = cache / (f"{name}.gz" if gzipped else name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, final)
        tmp = None
        return final, content
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _download(
    name: str,
    cache: Path,
    mirrors: Sequence[str],
    timeout: float,
    verbose: bool,
    looked: Sequence[str],
) -> Tuple[Path, bytes]:
    attempts: List[Tuple[str, BaseException]] = []
    for base in mirrors:
        url = base if base.endswith("/") else base + "/"
        url += f"{name}.gz"
        _log(verbose, f"downloading {url}")
        try:
            final, content = _fetch_one(url, name, cache, timeout)
        except Exception as exc:  # any error: fall back to the next mirror
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the open response (and its socket)
            attempts.append((url, exc))
            _log(verbose, f"  failed: {exc}")
            continue
        _log(verbose, f"  saved {final} ({len(content)} bytes, SHA-256 verified)")
        return final, content
    tried = "\n".join(
        f"  - {url}: {type(exc).__name__}: {exc}" for url, exc in attempts
    ) or "  (no mirrors given)"
    last = f"{type(attempts[-1][1]).__name__}: {attempts[-1][1]}" if attempts else "none"
    raise MNISTDownloadError(
        f"could not download {name}.gz into {cache} from any mirror.\n"
        f"URLs tried, in order:\n{tried}\n"
        f"Last error: {last}\n"
        f"{_looked_text(looked)}\n"
        f"Check the network (and any http_proxy/https_proxy settings), or download "
        f"the files by hand. {_fix_hint()}",
        attempts,
    ) from (attempts[-1][1] if attempts else None)


def _remove_empty(created: Sequence[Path]) -> None:
    """Remove the directories this call created (deepest first), if empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:  # not empty, or already gone
            return


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def load_data(
    path: Optional[PathLike] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    download: bool = True,
    verbose: bool = True,
    verify: bool = True,
    mirrors: Optional[Sequence[str]] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Directory holding the four files (or a parent holding ``mnist/``). When
        given, it is the only place looked in: if the files are not there an
        error is raised, nothing is downloaded.
    cache_dir : str or os.PathLike, optional
        Cache directory, looked in after ``$TAPEGRAD_DATA`` and where downloads
        go. Default: :func:`default_cache_dir`.
    download : bool, default True
        Download the files missing from the cache (or failing verification
        there) from the mirrors. Downloads are always verified.
    verbose : bool, default True
        Report downloads on standard error. Loading local files prints nothing.
    verify : bool, default True
        Check the SHA-256 of the decompressed content of local files against
        :data:`SHA256` (about 0.1 s for the 47 MB of MNIST). Structural checks
        (magic, dimensions, lengths, counts, label range) are always done.
    mirrors : sequence of str, optional
        Base URLs to download from, tried in order. Default: :data:`MIRRORS`.
    timeout : float, default 30
        Timeout, in seconds, of each network operation.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuple of numpy.ndarray
        ``x_train`` uint8 of shape (60000, 28, 28), ``y_train`` uint8 of shape
        (60000,), ``x_test`` uint8 of shape (10000, 28, 28), ``y_test`` uint8 of
        shape (10000,). Each array is a fresh copy: C-contiguous, writable and
        owning its memory, as from ``keras.datasets.mnist.load_data()``.

    Raises
    ------
    MNISTNotFoundError
        The files were not found (every directory looked in is listed).
    MNISTChecksumError
        A local file's decompressed content has the wrong SHA-256.
    MNISTFormatError
        A file is not a valid gzip/IDX file of the expected kind, or the files
        disagree (image and label counts, label range).
    MNISTDownloadError
        Downloading failed on every mirror (every URL tried is listed).

    Examples
    --------
    >>> from tapegrad.data import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()  # doctest: +SKIP
    >>> x_train.shape, y_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000,))
    >>> x = x_train.reshape(len(x_train), -1).astype("float32") / 255  # doctest: +SKIP
    """
    looked: List[str] = []
    local_advice = "Replace it with a good copy of the original file."

    # 1. Explicit path: the only place looked in.
    if path is not None:
        root = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        files = _try_dirs(root, "path argument", looked)
        if files is None:
            raise MNISTNotFoundError(
                f"MNIST files not found in the directory given as path={os.fspath(path)!r} "
                f"(nothing is downloaded when path is given).\n"
                f"{_looked_text(looked)}\n{_fix_hint()} Or pass path=None to use "
                f"${ENV_VAR}, the cache or a download."
            )
        return _load_files(files, verify, local_advice)

    # 2. Environment variable.
    env = os.environ.get(ENV_VAR, "")
    if env:
        root = Path(os.path.abspath(os.path.expanduser(env)))
        files = _try_dirs(root, f"${ENV_VAR}", looked)
        if files is not None:
            return _load_files(files, verify, local_advice + f" Or unset {ENV_VAR}.")
    else:
        looked.append(f"${ENV_VAR}: not set")

    # 3. Cache directory.
    if cache_dir is not None:
        cache = Path(os.path.abspath(os.path.expanduser(os.fspath(cache_dir))))
        cache_label = "cache directory, cache_dir argument"
    else:
        cache = default_cache_dir()
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        cache_label = "cache directory, " + (
            "from $XDG_CACHE_HOME" if xdg and os.path.isabs(xdg) else "default ~/.cache"
        )
    found, status = _scan(cache)
    looked.append(f"{cache} ({cache_label}): {status}")
    missing = [n for n, p in found.items() if p is None]
    if missing and not download:
        raise MNISTNotFoundError(
            f"MNIST files not found and download=False.\n{_looked_text(looked)}\n"
            f"{_fix_hint()} Or call load_data(download=True) to download them into {cache}."
        )

    arrays: Dict[str, np.ndarray] = {}
    wheres: Dict[str, str] = {}
    to_fetch: List[str] = []
    for name, p in found.items():
        if p is None:
            to_fetch.append(name)
            continue
        try:
            arrays[name] = _read_member(
                p, name, verify,
                f"Delete it to download it again{' (download=True)' if not download else ''}.",
            )
            wheres[name] = str(p)
        except (MNISTChecksumError, MNISTFormatError) as exc:
            if not download:
                raise
            _log(verbose, f"cached file is bad, downloading it again: {exc}")
            to_fetch.append(name)

    if to_fetch:
        created = [d for d in [cache, *cache.parents] if not d.exists()]
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _remove_empty(created)
            raise MNISTDownloadError(
                f"cannot create the cache directory {cache}: {exc}\n{_looked_text(looked)}\n"
                f"Pass cache_dir=... (a writable directory). {_fix_hint()}"
            ) from exc
        _log(verbose, f"MNIST not complete locally, downloading into {cache}")
        for entry in looked:
            _log(verbose, f"  looked in {entry}")
        use = list(MIRRORS if mirrors is None else ([mirrors] if isinstance(mirrors, str) else mirrors))
        try:
            for name in to_fetch:
                final, content = _download(name, cache, use, timeout, verbose, looked)
                # A bad cached file under the other name (raw vs .gz) must not shadow
                # the good one next time.
                old = found.get(name)
                if old is not None and old != final:
                    try:
                        old.unlink()
                    except OSError:
                        pass
                arrays[name] = _parse_member(content, name, str(final))
                wheres[name] = str(final)
        except BaseException:
            # a failed (or interrupted) download leaves no empty directories
            # behind; verified files already downloaded are kept for next time
            _remove_empty(created)
            raise

    ordered = {n: arrays[n] for n in FILES.values()}
    return _assemble(ordered, wheres)
