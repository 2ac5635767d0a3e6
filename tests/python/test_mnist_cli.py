"""``python -m tapegrad.examples.mnist`` as a command-line user meets it: the
help, one-line errors with exit status 2, the progress output, and a failed
download that leaves nothing behind. No test touches the network beyond
127.0.0.1 (a local http.server that answers 404)."""
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tapegrad.data import mnist
from tapegrad.examples import mnist as cli

ROOT = Path(__file__).resolve().parents[2]
MNIST = os.environ.get("TAPEGRAD_DATA") or str(ROOT.parent / "shared" / "data" / "mnist")


def run(*args, env=None, cwd=None):
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + os.environ.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "tapegrad.examples.mnist", *args], capture_output=True,
                          text=True, env=e, cwd=cwd, timeout=600)


def test_help_names_the_program_and_shows_defaults(tmp_path):
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    out = proc.stdout
    assert out.startswith("usage: python -m tapegrad.examples.mnist ")
    assert "mnist.py" not in out
    for text in ("--epochs EPOCHS", "(default: 10)", "(default: 32)", "(default: 128)",
                 "(default: 0.001)", "(default: mlp)", "--threads N", "--data DIR", "--debug"):
        assert text in out, text
    assert "(default: None)" not in out and "(default: False)" not in out


def test_every_option_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    options = [a.option_strings[-1] for a in cli.parser()._actions if a.option_strings[-1] != "--help"]
    assert "--threads" in options
    missing = [o for o in options if f"`{o}" not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_missing_data_is_one_line_and_status_2(tmp_path):
    proc = run("--data", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m tapegrad.examples.mnist: error: no MNIST files in --data ")
    assert "train-images-idx3-ubyte.gz" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in proc.stderr and "path=" not in proc.stderr
    assert proc.stdout == ""


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(mnist.MNISTNotFoundError):
        cli.main(["--data", str(tmp_path), "--debug"])


def test_corrupt_file_is_one_line(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    for name in mnist.FILES.values():
        (data / name).write_bytes(b"\0\0\x08\x03 not an idx file")
    with pytest.raises(SystemExit) as info:
        cli.main(["--data", str(data)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: " in err and "--data DIR" in err and str(data) in err


@pytest.mark.parametrize("args,what", [(["--batch-size", "0"], "--batch-size: must be greater than 0"),
                                       (["--epochs", "x"], "--epochs: expected a int"),
                                       (["--threads", "-2"], "--threads: must be greater than 0"),
                                       (["--lr", "0"], "--lr: must be greater than 0")])
def test_bad_options_exit_2(args, what, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert what in err and "Traceback" not in err


class NotFoundServer:
    def __init__(self):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def no_mirror(monkeypatch, tmp_path):
    srv = NotFoundServer()
    monkeypatch.setattr(mnist, "MIRRORS", [srv.url])
    monkeypatch.delenv("TAPEGRAD_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    yield srv
    srv.stop()


def test_failed_download_leaves_no_cache_directory(no_mirror, tmp_path, capsys):
    home = tmp_path / "home"
    with pytest.raises(SystemExit) as info:
        cli.main(["--epochs", "1"])
    assert info.value.code == 2
    assert no_mirror.requests == ["/mnist/train-images-idx3-ubyte.gz"]
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # before it: the loader's download log
    assert last.startswith("python -m tapegrad.examples.mnist: error: could not download MNIST")
    assert "HTTP Error 404" in last and "use --data DIR" in last
    assert list(home.iterdir()) == []  # no ~/.cache/tapegrad/mnist, no ~/.cache


def test_failed_download_keeps_an_existing_cache_directory(no_mirror, tmp_path):
    cache = tmp_path / "home" / ".cache"
    cache.mkdir()
    (cache / "other").write_text("x")
    with pytest.raises(mnist.MNISTDownloadError):
        mnist.load_data(verbose=False)
    assert sorted(p.name for p in cache.iterdir()) == ["other"]  # tapegrad/ removed, the rest kept


def test_training_prints_one_line_per_epoch_when_not_a_terminal(tmp_path):
    proc = run("--data", MNIST, "--limit", "640", "--epochs", "2", "--batch-size", "64", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tapegrad ") and lines[1] == "Epoch 1/2" and lines[3] == "Epoch 2/2"
    for line in (lines[2], lines[4]):
        assert line.startswith("10/10 [==============================] - ")
        assert "/step - loss: " in line and " - accuracy: " in line and " - val_accuracy: " in line
    assert lines[5].startswith("final test accuracy: ") and len(lines) == 6
    assert "\r" not in proc.stdout
