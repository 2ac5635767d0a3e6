"""Tests of tapegrad.data.mnist (the MNIST loader).

Everything runs on small IDX files written into tmp_path, except
test_real_mnist, which loads the real dataset from $TAPEGRAD_TEST_MNIST
(default: shared/data/mnist beside the repository) and fails if it is absent.

No test touches the network beyond 127.0.0.1: the autouse fixture points the
mirrors at a closed local port, the cache at tmp_path, and refuses (and
reports) any URL whose host is not 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from tapegrad.data import mnist

NAMES = list(mnist.FILES.values())
TRAIN_X, TRAIN_Y, TEST_X, TEST_Y = NAMES
BLOCKED_MIRROR = "http://127.0.0.1:9/no-network-in-tests/"


# --------------------------------------------------------------------------
# Helpers: synthetic IDX files
# --------------------------------------------------------------------------


def idx_bytes(arr, magic=None, dims=None, extra=b"", cut=0):
    """IDX encoding of a uint8 array, optionally with a wrong header/payload."""
    arr = np.asarray(arr, dtype=np.uint8)
    if dims is None:
        dims = arr.shape
    if magic is None:
        magic = 0x00000800 | len(dims)
    data = struct.pack(">i", magic) + struct.pack(f">{len(dims)}i", *dims)
    data += arr.tobytes() + extra
    return data[: len(data) - cut] if cut else data


def make_arrays(seed=0, n_train=7, n_test=5, rows=28, cols=28):
    rng = np.random.default_rng(seed)
    return {
        TRAIN_X: rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        TRAIN_Y: rng.integers(0, 10, (n_train,), dtype=np.uint8),
        TEST_X: rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        TEST_Y: rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }


def encode(arrays):
    return {name: idx_bytes(arr) for name, arr in arrays.items()}


def write_dir(directory, raws, gz=True):
    """Write {name: decompressed bytes} into directory (gzipped or raw)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, raw in raws.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return directory


def patch_sha(monkeypatch, raws):
    for name, raw in raws.items():
        monkeypatch.setitem(mnist.SHA256, name, hashlib.sha256(raw).hexdigest())


def check_result(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, name in ((x_train, TRAIN_X), (y_train, TRAIN_Y), (x_test, TEST_X), (y_test, TEST_Y)):
        want = arrays[name]
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.uint8
        assert got.shape == want.shape
        assert got.flags["C_CONTIGUOUS"] and got.flags["WRITEABLE"]
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def dataset(monkeypatch):
    """A valid synthetic dataset whose checksums are patched into SHA256."""
    arrays = make_arrays()
    raws = encode(arrays)
    patch_sha(monkeypatch, raws)
    return arrays, raws


# --------------------------------------------------------------------------
# Isolation: no real network, no real cache, no inherited environment
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolate(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist, "MIRRORS", [BLOCKED_MIRROR])
    monkeypatch.delenv("TAPEGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)

    violations = []
    real_open = mnist._open_url

    def guarded_open(url, timeout):
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            violations.append(url)
            raise OSError(f"test isolation: refusing to open non-local URL {url}")
        return real_open(url, timeout)

    monkeypatch.setattr(mnist, "_open_url", guarded_open)
    yield violations
    assert not violations, f"a test tried to reach the network: {violations}"


# --------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------


class MirrorServer:
    """routes: URL path -> (mode, payload); mode is 'ok', 'truncate' or a status."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                mode, payload = server.routes.get(self.path, (404, b"not found"))
                if mode == "ok":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-gzip")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                elif mode == "truncate":
                    # Announce the whole file, send half of it, drop the connection.
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.send_error(mode)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, prefix):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{prefix}/"

    def serve(self, prefix, raws, mode="ok", transform=None):
        for name, raw in raws.items():
            payload = gzip.compress(raw, mtime=0)
            if transform is not None:
                payload = transform(payload)
            self.routes[f"/{prefix}/{name}.gz"] = (mode, payload)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = MirrorServer()
    yield srv
    srv.stop()


def cache_listing(cache):
    return sorted(p.name for p in Path(cache).iterdir()) if Path(cache).exists() else []


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------


def test_read_idx_bytes_gzip_and_path(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(arr)
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    for source in (raw, bytearray(raw), memoryview(raw), gzip.compress(raw),
                   tmp_path / "a.idx", str(tmp_path / "a.idx.gz")):
        got = mnist.read_idx(source)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        assert got.flags["C_CONTIGUOUS"] and got.flags["WRITEABLE"] and got.flags["OWNDATA"]
        np.testing.assert_array_equal(got, arr)


def test_read_idx_labels_and_multibyte_types():
    labels = mnist.read_idx(idx_bytes([3, 1, 4, 1, 5]))
    assert labels.shape == (5,) and labels.tolist() == [3, 1, 4, 1, 5]
    ints = mnist.read_idx(struct.pack(">iii", 0x00000C02, 1, 2) + struct.pack(">ii", -1, 70000))
    assert ints.dtype == np.int32 and ints.tolist() == [[-1, 70000]]
    floats = mnist.read_idx(struct.pack(">ii", 0x00000D01, 2) + struct.pack(">ff", 0.5, -2.0))
    assert floats.dtype == np.float32 and floats.tolist() == [0.5, -2.0]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x00\x00", ["too short"]),
        (struct.pack(">i", 0x12340801) + b"\x00" * 8, ["not an IDX file", "0x12340801"]),
        (struct.pack(">ii", 0x00000F01, 1) + b"\x00", ["unknown IDX data type", "0x0F"]),
        (struct.pack(">ii", 0x00000803, 2), ["truncated header"]),
        (idx_bytes(np.zeros((2, 3), np.uint8), cut=1), ["truncated payload", "2x3", "6 bytes", "only 5"]),
        (idx_bytes(np.zeros((2, 3), np.uint8), extra=b"xy"), ["2 bytes of trailing data", "2x3"]),
        (b"\x1f\x8b" + b"not really gzip", ["not a valid gzip file"]),
    ],
)
def test_read_idx_rejects_malformed(data, words):
    with pytest.raises(mnist.MNISTFormatError) as info:
        mnist.read_idx(data)
    for word in words:
        assert word in str(info.value)


def test_error_hierarchy():
    for cls in (mnist.MNISTNotFoundError, mnist.MNISTFormatError,
                mnist.MNISTChecksumError, mnist.MNISTDownloadError):
        assert issubclass(cls, mnist.MNISTError)
    assert issubclass(mnist.MNISTError, RuntimeError)
    assert set(mnist.FILES.values()) == set(mnist.SHA256)
    assert all(len(h) == 64 for h in mnist.SHA256.values())


# --------------------------------------------------------------------------
# Loading good local files
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_good_files(tmp_path, dataset, gz):
    arrays, raws = dataset
    write_dir(tmp_path / "d", raws, gz=gz)
    check_result(mnist.load_data(tmp_path / "d", download=False), arrays)
    check_result(mnist.load_data(str(tmp_path / "d")), arrays)


def test_load_mixed_gz_and_raw(tmp_path, dataset):
    arrays, raws = dataset
    write_dir(tmp_path / "d", {k: raws[k] for k in (TRAIN_X, TEST_Y)}, gz=True)
    write_dir(tmp_path / "d", {k: raws[k] for k in (TRAIN_Y, TEST_X)}, gz=False)
    check_result(mnist.load_data(tmp_path / "d"), arrays)


def test_gz_preferred_over_raw(tmp_path, dataset):
    arrays, raws = dataset
    d = write_dir(tmp_path / "d", raws, gz=True)
    other = encode(make_arrays(seed=99))
    write_dir(d, other, gz=False)  # raw files with other content, other checksums
    check_result(mnist.load_data(d), arrays)


def test_verify_false_skips_checksum(tmp_path):
    arrays = make_arrays()  # SHA256 is the real table: these files do not match it
    write_dir(tmp_path / "d", encode(arrays))
    check_result(mnist.load_data(tmp_path / "d", verify=False), arrays)
    with pytest.raises(mnist.MNISTChecksumError):
        mnist.load_data(tmp_path / "d")


def test_path_accepts_parent_with_mnist_subdir(tmp_path, dataset):
    arrays, raws = dataset
    write_dir(tmp_path / "data" / "mnist", raws)
    check_result(mnist.load_data(tmp_path / "data"), arrays)


# --------------------------------------------------------------------------
# Lookup order: path > TAPEGRAD_DATA > cache > download
# --------------------------------------------------------------------------


@pytest.fixture
def three_places(tmp_path, monkeypatch, server):
    """Distinct valid datasets in a path dir, an env dir and the cache dir."""
    sets = {k: make_arrays(seed=i) for i, k in enumerate(("path", "env", "cache"))}
    dirs = {k: write_dir(tmp_path / k, encode(a)) for k, a in sets.items()}
    monkeypatch.setenv("TAPEGRAD_DATA", str(dirs["env"]))
    server.serve("m", encode(make_arrays(seed=42)))
    monkeypatch.setattr(mnist, "MIRRORS", [server.url("m")])
    return sets, dirs


def test_path_beats_env_and_cache(three_places, server):
    sets, dirs = three_places
    got = mnist.load_data(dirs["path"], cache_dir=dirs["cache"], verify=False)
    check_result(got, sets["path"])
    assert server.requests == []


def test_env_beats_cache(three_places, server):
    sets, dirs = three_places
    check_result(mnist.load_data(cache_dir=dirs["cache"], verify=False), sets["env"])
    assert server.requests == []


def test_env_parent_with_mnist_subdir(tmp_path, monkeypatch, dataset, server):
    arrays, raws = dataset
    write_dir(tmp_path / "datasets" / "mnist", raws)
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "datasets"))
    monkeypatch.setattr(mnist, "MIRRORS", [server.url("m")])
    check_result(mnist.load_data(cache_dir=tmp_path / "cache"), arrays)
    assert server.requests == [] and cache_listing(tmp_path / "cache") == []


def test_cache_beats_download(three_places, monkeypatch, server):
    sets, dirs = three_places
    monkeypatch.delenv("TAPEGRAD_DATA")
    check_result(mnist.load_data(cache_dir=dirs["cache"], verify=False), sets["cache"])
    assert server.requests == []


def test_env_without_files_falls_through_to_cache(three_places, tmp_path, monkeypatch, server):
    sets, dirs = three_places
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "empty"))
    check_result(mnist.load_data(cache_dir=dirs["cache"], verify=False), sets["cache"])
    assert server.requests == []


def test_default_cache_xdg_then_home(tmp_path, monkeypatch, dataset):
    arrays, raws = dataset
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    assert mnist.default_cache_dir() == xdg / "tapegrad" / "mnist"
    write_dir(xdg / "tapegrad" / "mnist", raws)
    check_result(mnist.load_data(download=False), arrays)

    monkeypatch.delenv("XDG_CACHE_HOME")
    home_cache = tmp_path / "home" / ".cache" / "tapegrad" / "mnist"
    assert mnist.default_cache_dir() == home_cache
    write_dir(home_cache, raws, gz=False)
    check_result(mnist.load_data(download=False), arrays)


def test_explicit_path_without_files_fails_without_download(tmp_path, monkeypatch, dataset, server):
    arrays, raws = dataset
    write_dir(tmp_path / "cache", raws)  # a good cache must NOT be used
    server.serve("m", raws)
    monkeypatch.setattr(mnist, "MIRRORS", [server.url("m")])
    d = tmp_path / "given"
    write_dir(d, {TRAIN_X: raws[TRAIN_X]})
    with pytest.raises(mnist.MNISTNotFoundError) as info:
        mnist.load_data(d, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert str(d) in msg and str(d / "mnist") in msg
    assert f"{TRAIN_Y}[.gz]" in msg and f"{TEST_X}[.gz]" in msg
    assert "TAPEGRAD_DATA=" in msg and "path=" in msg
    assert str(tmp_path / "cache") not in msg
    assert server.requests == []


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(mnist.MNISTNotFoundError) as info:
        mnist.load_data(tmp_path / "nope")
    assert f"{tmp_path / 'nope'} (path argument): does not exist" in str(info.value)


def test_download_false_with_nothing_says_where_it_looked(tmp_path, monkeypatch):
    env_dir = tmp_path / "envdir"
    env_dir.mkdir()
    monkeypatch.setenv("TAPEGRAD_DATA", str(env_dir))
    cache = tmp_path / "cache"
    with pytest.raises(mnist.MNISTNotFoundError) as info:
        mnist.load_data(cache_dir=cache, download=False)
    msg = str(info.value)
    # every directory, in order
    positions = [msg.index(s) for s in (f"{env_dir} (", f"{env_dir / 'mnist'} (", f"{cache} (")]
    assert positions == sorted(positions)
    assert "download=False" in msg and "download=True" in msg
    assert "TAPEGRAD_DATA=/path/to/mnist" in msg
    for name in NAMES:
        assert f"{name}.gz" in msg
    assert cache_listing(cache) == []


def test_download_false_reports_unset_env_and_default_cache(tmp_path):
    with pytest.raises(mnist.MNISTNotFoundError) as info:
        mnist.load_data(download=False)
    msg = str(info.value)
    assert "$TAPEGRAD_DATA: not set" in msg
    assert str(tmp_path / "xdg-cache" / "tapegrad" / "mnist") in msg


# --------------------------------------------------------------------------
# Bad local files
# --------------------------------------------------------------------------


def _bad_dir(tmp_path, name, raw, gz=True):
    raws = encode(make_arrays())
    raws[name] = raw
    return write_dir(tmp_path / "bad", raws, gz=gz), raws


def _load_error(directory, cls=mnist.MNISTFormatError, **kw):
    with pytest.raises(cls) as info:
        mnist.load_data(directory, verify=False, **kw)
    assert isinstance(info.value, mnist.MNISTError)
    return str(info.value)


def test_wrong_magic(tmp_path):
    x = make_arrays()[TRAIN_X]
    d, _ = _bad_dir(tmp_path, TRAIN_X, idx_bytes(x, magic=0x00000D03))
    msg = _load_error(d)
    assert str(d / f"{TRAIN_X}.gz") in msg
    assert "bad magic number 0x00000D03" in msg and "expected 0x00000803" in msg


def test_labels_file_in_place_of_images(tmp_path):
    d, raws = _bad_dir(tmp_path, TEST_X, idx_bytes(np.zeros(5, np.uint8)))
    msg = _load_error(d)
    assert str(d / f"{TEST_X}.gz") in msg and "0x00000801" in msg and "expected 0x00000803" in msg


def test_wrong_number_of_dims(tmp_path):
    x = make_arrays()[TRAIN_X]
    d, _ = _bad_dir(tmp_path, TRAIN_X, idx_bytes(x.reshape(len(x), -1)), gz=False)
    msg = _load_error(d)
    assert str(d / TRAIN_X) in msg
    assert "wrong number of dimensions (2, expected 3)" in msg


def test_truncated_payload(tmp_path):
    x = make_arrays()[TRAIN_X]
    d, _ = _bad_dir(tmp_path, TRAIN_X, idx_bytes(x, cut=10))
    msg = _load_error(d)
    assert str(d / f"{TRAIN_X}.gz") in msg
    assert "truncated payload" in msg and "7x28x28" in msg and "10 missing" in msg


def test_truncated_gzip(tmp_path):
    raws = encode(make_arrays())
    d = write_dir(tmp_path / "bad", raws)
    gz = gzip.compress(raws[TEST_X])
    (d / f"{TEST_X}.gz").write_bytes(gz[: len(gz) // 2])
    msg = _load_error(d)
    assert str(d / f"{TEST_X}.gz") in msg and "not a valid gzip file" in msg


def test_trailing_bytes(tmp_path):
    y = make_arrays()[TEST_Y]
    d, _ = _bad_dir(tmp_path, TEST_Y, idx_bytes(y, extra=b"\x00" * 3))
    msg = _load_error(d)
    assert str(d / f"{TEST_Y}.gz") in msg and "3 bytes of trailing data" in msg


def test_count_mismatch(tmp_path):
    y = make_arrays()[TRAIN_Y][:-1]  # 6 labels for 7 images
    d, _ = _bad_dir(tmp_path, TRAIN_Y, idx_bytes(y))
    msg = _load_error(d)
    assert "count mismatch" in msg and "7 images" in msg and "6 labels" in msg
    assert str(d / f"{TRAIN_X}.gz") in msg and str(d / f"{TRAIN_Y}.gz") in msg


def test_label_out_of_range(tmp_path):
    y = make_arrays()[TEST_Y].copy()
    y[2] = 10
    d, _ = _bad_dir(tmp_path, TEST_Y, idx_bytes(y))
    msg = _load_error(d)
    assert str(d / f"{TEST_Y}.gz") in msg and "label[2] = 10" in msg and "0..9" in msg


def test_format_error_even_when_checksum_matches(tmp_path, monkeypatch):
    """With verify=True and a matching checksum, parsing still catches problems."""
    x = make_arrays()[TRAIN_X]
    d, raws = _bad_dir(tmp_path, TRAIN_X, idx_bytes(x, extra=b"!"))
    patch_sha(monkeypatch, raws)
    with pytest.raises(mnist.MNISTFormatError) as info:
        mnist.load_data(d)
    assert str(d / f"{TRAIN_X}.gz") in str(info.value) and "trailing" in str(info.value)


def test_wrong_checksum(tmp_path, dataset, monkeypatch):
    arrays, raws = dataset
    d = write_dir(tmp_path / "d", raws)
    tampered = bytearray(raws[TEST_X])
    tampered[-1] ^= 0xFF
    (d / f"{TEST_X}.gz").write_bytes(gzip.compress(bytes(tampered)))
    monkeypatch.setenv("TAPEGRAD_DATA", str(d))
    for kwargs in ({"path": d}, {}):
        with pytest.raises(mnist.MNISTChecksumError) as info:
            mnist.load_data(**kwargs, cache_dir=tmp_path / "cache")
        msg = str(info.value)
        assert str(d / f"{TEST_X}.gz") in msg
        assert mnist.SHA256[TEST_X] in msg
        assert hashlib.sha256(bytes(tampered)).hexdigest() in msg
        assert "checksum mismatch" in msg and "SHA-256" in msg
    assert cache_listing(tmp_path / "cache") == []  # a bad TAPEGRAD_DATA is not bypassed


# --------------------------------------------------------------------------
# Downloads from a local server
# --------------------------------------------------------------------------


def test_download_success(tmp_path, dataset, server, capsys):
    arrays, raws = dataset
    server.serve("m", raws)
    cache = tmp_path / "cache"
    check_result(mnist.load_data(cache_dir=cache, mirrors=[server.url("m")]), arrays)
    assert sorted(server.requests) == sorted(f"/m/{n}.gz" for n in NAMES)
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)
    for name in NAMES:  # stored as served, content verified
        assert gzip.decompress((cache / f"{name}.gz").read_bytes()) == raws[name]
    err = capsys.readouterr().err
    assert "downloading " + server.url("m") in err and "SHA-256 verified" in err

    # second call: from the cache, no request, verified, silent
    server.requests.clear()
    check_result(mnist.load_data(cache_dir=cache, mirrors=[server.url("m")]), arrays)
    assert server.requests == []
    assert capsys.readouterr().err == ""


def test_download_uses_module_mirrors_and_default_cache(tmp_path, dataset, server, monkeypatch, capsys):
    arrays, raws = dataset
    server.serve("m", raws)
    monkeypatch.setattr(mnist, "MIRRORS", [server.url("m").rstrip("/")])  # no trailing slash
    check_result(mnist.load_data(verbose=False), arrays)
    cache = tmp_path / "xdg-cache" / "tapegrad" / "mnist"
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)
    assert capsys.readouterr().err == ""


def test_download_404_then_second_mirror(tmp_path, dataset, server):
    arrays, raws = dataset
    server.serve("good", raws)
    cache = tmp_path / "cache"
    got = mnist.load_data(cache_dir=cache, mirrors=[server.url("missing"), server.url("good")])
    check_result(got, arrays)
    for name in NAMES:
        i = server.requests.index(f"/missing/{name}.gz")
        assert server.requests[i + 1] == f"/good/{name}.gz"
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)


def test_download_only_missing_files(tmp_path, dataset, server):
    arrays, raws = dataset
    cache = write_dir(tmp_path / "cache", {TRAIN_X: raws[TRAIN_X], TEST_Y: raws[TEST_Y]})
    server.serve("m", raws)
    check_result(mnist.load_data(cache_dir=cache, mirrors=[server.url("m")]), arrays)
    assert sorted(server.requests) == sorted([f"/m/{TRAIN_Y}.gz", f"/m/{TEST_X}.gz"])


def test_corrupt_cached_file_is_downloaded_again(tmp_path, dataset, server):
    arrays, raws = dataset
    cache = write_dir(tmp_path / "cache", raws)
    (cache / f"{TRAIN_Y}.gz").unlink()
    (cache / TRAIN_Y).write_bytes(raws[TRAIN_Y][:-1] + b"\x09")  # raw, wrong content
    server.serve("m", raws)
    with pytest.raises(mnist.MNISTChecksumError) as info:
        mnist.load_data(cache_dir=cache, download=False)
    assert str(cache / TRAIN_Y) in str(info.value)
    check_result(mnist.load_data(cache_dir=cache, mirrors=[server.url("m")]), arrays)
    assert server.requests == [f"/m/{TRAIN_Y}.gz"]
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)  # bad raw file removed


def _assert_download_failed(cache, exc_info, urls, name):
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, mnist.MNISTError)
    assert f"{name}.gz" in msg and str(cache) in msg
    for url in urls:
        assert url + f"{name}.gz" in msg
    assert "Last error:" in msg
    assert "TAPEGRAD_DATA=" in msg
    # nothing under a final name for that file, no temporary files
    listing = cache_listing(cache)
    assert f"{name}.gz" not in listing and name not in listing
    assert not [f for f in listing if f.startswith(".") or f.endswith(".part")]
    return msg


@pytest.mark.parametrize("how", ["content", "gzip-bytes"])
def test_download_corrupted_bytes(tmp_path, dataset, server, how):
    arrays, raws = dataset
    if how == "content":  # valid gzip of wrong content
        bad = dict(raws)
        tampered = bytearray(raws[TRAIN_X])
        tampered[100] ^= 1
        bad[TRAIN_X] = bytes(tampered)
        server.serve("m", bad)
    else:  # flipped bytes inside the gzip stream
        def flip(payload):
            b = bytearray(payload)
            b[len(b) // 2] ^= 0xFF
            b[-6] ^= 0xFF  # the CRC
            return bytes(b)
        server.serve("m", {k: v for k, v in raws.items() if k != TRAIN_X})
        server.serve("m", {TRAIN_X: raws[TRAIN_X]}, transform=flip)
    cache = tmp_path / "cache"
    with pytest.raises(mnist.MNISTDownloadError) as info:
        mnist.load_data(cache_dir=cache, mirrors=[server.url("m")])
    msg = _assert_download_failed(cache, info, [server.url("m")], TRAIN_X)
    if how == "content":
        assert "checksum mismatch" in msg and mnist.SHA256[TRAIN_X] in msg
        assert isinstance(info.value.attempts[0][1], mnist.MNISTChecksumError)
    else:
        assert "checksum mismatch" in msg or "not a valid gzip file" in msg


def test_download_connection_dropped(tmp_path, dataset, server):
    arrays, raws = dataset
    server.serve("m", raws)
    server.serve("m", {TEST_X: raws[TEST_X]}, mode="truncate")
    cache = tmp_path / "cache"
    with pytest.raises(mnist.MNISTDownloadError) as info:
        mnist.load_data(cache_dir=cache, mirrors=[server.url("m")], timeout=10)
    msg = _assert_download_failed(cache, info, [server.url("m")], TEST_X)
    assert "truncated download" in msg


def test_download_dropped_then_second_mirror(tmp_path, dataset, server):
    arrays, raws = dataset
    server.serve("bad", raws, mode="truncate")
    server.serve("good", raws)
    cache = tmp_path / "cache"
    check_result(mnist.load_data(cache_dir=cache, mirrors=[server.url("bad"), server.url("good")]), arrays)
    assert cache_listing(cache) == sorted(f"{n}.gz" for n in NAMES)


def test_download_all_mirrors_fail_names_every_url(tmp_path, dataset, server):
    arrays, raws = dataset
    mirrors = [server.url("a"), server.url("b"), BLOCKED_MIRROR]
    cache = tmp_path / "cache"
    with pytest.raises(mnist.MNISTDownloadError) as info:
        mnist.load_data(cache_dir=cache, mirrors=mirrors, verbose=False)
    msg = _assert_download_failed(cache, info, mirrors, TRAIN_X)
    assert "HTTP Error 404" in msg
    assert [u for u, _ in info.value.attempts] == [m + f"{TRAIN_X}.gz" for m in mirrors]
    # where it looked before downloading
    assert "$TAPEGRAD_DATA: not set" in msg and f"{cache} (" in msg


def test_no_test_reaches_real_mirrors(isolate):
    assert mnist.MIRRORS == [BLOCKED_MIRROR]
    with pytest.raises(OSError, match="refusing"):
        mnist._open_url("https://ossci-datasets.s3.amazonaws.com/mnist/x", 1)
    assert isolate == ["https://ossci-datasets.s3.amazonaws.com/mnist/x"]
    isolate.clear()  # expected here; anywhere else the fixture fails the test


# --------------------------------------------------------------------------
# The real dataset
# --------------------------------------------------------------------------

REAL_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


def test_real_mnist():
    where = Path(os.environ.get("TAPEGRAD_TEST_MNIST") or REAL_DEFAULT)
    if not where.is_dir():
        pytest.fail(
            f"the real MNIST files are required but {where} does not exist. Set "
            f"TAPEGRAD_TEST_MNIST=/path/to/mnist (a directory holding "
            f"{', '.join(n + '.gz' for n in NAMES)}); CI provides shared/data/mnist "
            f"beside the repository."
        )
    (x_train, y_train), (x_test, y_test) = mnist.load_data(where, download=False)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.uint8 and a.flags["C_CONTIGUOUS"] and a.flags["WRITEABLE"]
    assert np.bincount(y_train, minlength=10).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert x_train.min() == 0 and x_train.max() == 255
