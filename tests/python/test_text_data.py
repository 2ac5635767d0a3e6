"""tapegrad.data.text: finding, verifying and downloading the two text corpora,
and the character vocabulary the lessons build on them."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from tapegrad.data import text

ROOT = Path(__file__).resolve().parents[2]
_env = os.environ.get("TAPEGRAD_DATA")
# CI points TAPEGRAD_DATA at the MNIST folder; the text data sets are its siblings
DATA = Path(_env).parent if _env and Path(_env).name == "mnist" else \
    Path(_env) if _env else ROOT.parent / "shared" / "data"


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TAPEGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def _sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def test_the_shared_files_are_the_published_ones():
    for name, src in text.DATASETS.items():
        f = DATA / src.folder / src.file
        assert f.stat().st_size == src.size, name
        assert _sha(f) == src.sha256, name


def test_names_from_a_root_a_folder_and_the_file_itself(no_env):
    by_root = text.names(DATA)
    assert len(by_root) == 32033 and by_root[:3] == ["emma", "olivia", "ava"]
    assert all(w.isalpha() and w.islower() for w in by_root)
    assert text.names(DATA / "names") == by_root
    assert text.names(DATA / "names" / "names.txt") == by_root


def test_env_may_name_a_sibling_data_set_folder(no_env, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_DATA", str(DATA / "mnist"))
    s = text.tinyshakespeare()
    assert len(s) == 1115394 and s.startswith("First Citizen:")
    assert len(text.Vocabulary(s)) == 65


def test_a_corrupt_file_is_refused_wherever_it_is(no_env):
    d = no_env / "mine"
    d.mkdir()
    good = (DATA / "names" / "names.txt").read_text()
    (d / "names.txt").write_text(good.replace("emma", "emmy", 1))
    with pytest.raises(text.TextDataError, match="SHA-256") as e:
        text.names(d)
    assert "names.txt" in str(e.value) and "delete it" in str(e.value)


def test_not_found_says_where_it_looked(no_env):
    with pytest.raises(text.TextDataError) as e:
        text.names(cache_dir=no_env / "cache", download=False)
    msg = str(e.value)
    assert "$TAPEGRAD_DATA: not set" in msg and str(no_env / "cache") in msg
    assert text.DATASETS["names"].url in msg and text.DATASETS["names"].sha256 in msg
    with pytest.raises(text.TextDataError, match="path argument"):
        text.names(no_env / "nowhere")  # an explicit path: nothing else is tried


def test_unknown_data_set():
    with pytest.raises(ValueError, match="unknown data set 'shakespeare'"):
        text.load("shakespeare")


def _local_source(monkeypatch, name, url):
    src = text.DATASETS[name]
    monkeypatch.setitem(text.DATASETS, name, src._replace(url=url))


def test_download_verifies_then_caches(no_env, monkeypatch):
    # the public copy, served from a local file:// URL (no network here)
    _local_source(monkeypatch, "names", (DATA / "names" / "names.txt").as_uri())
    cache = no_env / "cache"
    words = text.names(cache_dir=cache)
    assert len(words) == 32033
    assert sorted(p.name for p in cache.iterdir()) == ["names.txt"]  # no temporary left
    assert _sha(cache / "names.txt") == text.DATASETS["names"].sha256
    _local_source(monkeypatch, "names", "file:///nonexistent/names.txt")
    assert text.names(cache_dir=cache) == words  # now found in the cache, no download


def test_a_corrupt_download_leaves_nothing(no_env, monkeypatch):
    bad = no_env / "bad.txt"
    bad.write_text("not names\n")
    _local_source(monkeypatch, "names", bad.as_uri())
    cache = no_env / "cache"
    with pytest.raises(text.TextDataError, match="does not match"):
        text.names(cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_a_failed_download_is_reported(no_env, monkeypatch):
    _local_source(monkeypatch, "names", "file:///nonexistent/names.txt")
    with pytest.raises(text.TextDataError, match="(download)"):
        text.names(cache_dir=no_env / "cache")


def test_vocabulary_round_trip_and_errors():
    words = text.names(DATA)
    v = text.Vocabulary(words, specials=".")
    assert len(v) == 27 and v.chars[0] == "." and v.chars[1:] == "abcdefghijklmnopqrstuvwxyz"
    ids = v.encode("olivia")
    assert ids.dtype == np.int64 and v.decode(ids) == "olivia"
    with pytest.raises(ValueError, match="'Z' is not in the vocabulary"):
        v.encode("Zoe")
    with pytest.raises(ValueError, match="outside 0..26"):
        v.decode([3, 27])


def test_context_windows_match_a_direct_loop():
    words = ["emma", "ava", "x"]
    v = text.Vocabulary(words, specials=".")
    X, Y = text.context_windows(words, 3, v)
    pairs = []
    for w in words:
        s = "..." + w + "."
        for i in range(len(w) + 1):
            pairs.append((s[i:i + 3], s[i + 3]))
    assert [v.decode(x) for x in X] == [p[0] for p in pairs]
    assert v.decode(Y) == "".join(p[1] for p in pairs)
    with pytest.raises(ValueError, match="block_size"):
        text.context_windows(words, 0, v)
