"""Tests for minisnn.data.download_mnist (and `minisnn download`) against a local HTTP server
on 127.0.0.1: no test here reaches the internet.

The served folder is a copy of the bundled MNIST sample. Its two test files are the official
ones (checked against FILES); its train files are a subset, so the tests pass their MD5s through
the `md5s` override.
"""
import functools
import hashlib
import os
import shutil
import socket
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from minisnn import cli
from minisnn.data import (FILES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, DownloadError,
                          download_mnist)


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; records each request; cuts the body short for chosen files."""

    def __init__(self, *args, requests, truncate, **kwargs):
        self.requests, self.truncate = requests, truncate
        super().__init__(*args, **kwargs)

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        self.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.truncate:
            return super().do_GET()
        body = (self.truncate[name]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])  # then the connection closes
        self.close_connection = True


@pytest.fixture
def serve():
    """serve(folder, truncate=()) -> (base URL, list of requested paths)."""
    servers = []

    def start(folder, truncate=()):
        requests = []
        handler = functools.partial(Handler, directory=str(folder), requests=requests,
                                    truncate={name: folder / name for name in truncate})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/", requests

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served(tmp_path, mnist_dir):
    """A copy of the bundled sample to serve, and the MD5 override for its train files."""
    folder = tmp_path / "served"
    folder.mkdir()
    for name in FILES:
        shutil.copyfile(mnist_dir / name, folder / name)
    md5s = {name: md5_of(folder / name) for name in (TRAIN_IMAGES, TRAIN_LABELS)}
    return folder, md5s


def md5_of(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def dead_url():
    """A URL on a local port where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def names_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_downloads_and_verifies_all_four(tmp_path, served, serve):
    source, md5s = served
    url, requests = serve(source)
    dest = tmp_path / "nested" / "mnist"
    assert download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s) == dest
    assert names_in(dest) == sorted(FILES)  # no temp files left over
    for name in FILES:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    assert sorted(requests) == sorted("/" + name for name in FILES)


def test_progress_bar_runs(tmp_path, served, serve, capsys):
    source, md5s = served
    url, _ = serve(source)
    download_mnist(tmp_path / "d", mirrors=[url], progress=True, timeout=5, md5s=md5s)
    assert TRAIN_IMAGES in capsys.readouterr().err


def test_second_run_reuses_files_without_network(tmp_path, served, serve):
    source, md5s = served
    url, requests = serve(source)
    dest = tmp_path / "d"
    download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    assert len(requests) == 4
    download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    download_mnist(dest, mirrors=[dead_url()], progress=False, timeout=5, md5s=md5s)
    assert len(requests) == 4


def test_other_files_are_never_overwritten_without_force(tmp_path, served, serve):
    source, md5s = served
    url, requests = serve(source)
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / TEST_LABELS).write_bytes(b"stale")
    with pytest.raises(DownloadError) as info:
        download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    message = str(info.value)
    assert (dest / TEST_LABELS).read_bytes() == b"stale"                  # untouched
    assert names_in(dest) == [TEST_LABELS] and requests == []              # nothing fetched
    assert str(dest) in message and TEST_LABELS in message and "--force" in message
    assert hashlib.md5(b"stale").hexdigest() in message and FILES[TEST_LABELS] in message
    assert len(message.splitlines()) <= 4
    # force: the one file in the way is replaced, the others fetched
    download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s, force=True)
    assert (dest / TEST_LABELS).read_bytes() == (source / TEST_LABELS).read_bytes()
    assert names_in(dest) == sorted(FILES)


def test_a_fashion_mnist_folder_is_left_alone(tmp_path, served, serve, fashion_dir):
    """The case that used to clobber: another data set's four files given as the folder."""
    fashion = fashion_dir
    source, md5s = served
    url, requests = serve(source)
    dest = tmp_path / "fashion"
    shutil.copytree(fashion, dest)
    before = {name: md5_of(dest / name) for name in FILES}
    with pytest.raises(DownloadError) as info:
        download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    assert "4 file(s) that are not the official MNIST files" in str(info.value)
    assert {name: md5_of(dest / name) for name in FILES} == before and requests == []


def test_truncated_body_leaves_nothing(tmp_path, served, serve):
    source, md5s = served
    url, _ = serve(source, truncate=[TRAIN_IMAGES])
    dest = tmp_path / "d"
    with pytest.raises(DownloadError) as info:
        download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    assert TRAIN_IMAGES in str(info.value)
    assert names_in(dest) == []  # train images come first: no final file, no temp file


class DyingResponse:
    """Stands in for an HTTP response whose stream breaks after the first chunk."""

    def __init__(self, error):
        self.headers, self.error, self.sent = {"Content-Length": "5000"}, error, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, size):
        if self.sent:
            raise self.error
        self.sent = True
        return b"\x00" * 1000


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"),
                                   KeyboardInterrupt()])
def test_stream_dying_midway_leaves_nothing(tmp_path, monkeypatch, error):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: DyingResponse(error))
    dest = tmp_path / "d"
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else DownloadError) \
            as info:
        download_mnist(dest, mirrors=["http://a.invalid/", "http://b.invalid/"],
                       progress=False, timeout=5)
    if not isinstance(error, KeyboardInterrupt):
        assert str(info.value).count("connection reset by peer") == 2
    assert names_in(dest) == []


def test_checksum_mismatch_is_rejected(tmp_path, served, serve):
    source, md5s = served
    damaged = bytearray((source / TEST_LABELS).read_bytes())
    damaged[-1] ^= 0xFF
    (source / TEST_LABELS).write_bytes(bytes(damaged))
    url, _ = serve(source)
    dest = tmp_path / "d"
    with pytest.raises(DownloadError) as info:
        download_mnist(dest, mirrors=[url], progress=False, timeout=5, md5s=md5s)
    message = str(info.value)
    assert TEST_LABELS in message and "checksum mismatch" in message
    assert hashlib.md5(damaged).hexdigest() in message and FILES[TEST_LABELS] in message
    assert TEST_LABELS not in names_in(dest)
    assert names_in(dest) == sorted(set(FILES) - {TEST_LABELS})  # no temp file either


def test_dead_and_missing_mirrors_fall_through(tmp_path, served, serve):
    source, md5s = served
    empty = tmp_path / "empty"
    empty.mkdir()
    url_404, _ = serve(empty)
    url, _ = serve(source)
    dest = tmp_path / "d"
    download_mnist(dest, mirrors=[dead_url(), url_404, url], progress=False, timeout=5,
                   md5s=md5s)
    assert names_in(dest) == sorted(FILES)


def test_all_mirrors_dead(tmp_path):
    mirrors = [dead_url(), dead_url()]
    dest = tmp_path / "d"
    with pytest.raises(DownloadError) as info:
        download_mnist(dest, mirrors=mirrors, progress=False, timeout=5)
    assert_explains_failure(str(info.value), TRAIN_IMAGES, dest, mirrors, "refused")
    assert names_in(dest) == []


def assert_explains_failure(message, name, dest, mirrors, why):
    """A few short lines: which file, every mirror with why, and both ways out."""
    lines = message.splitlines()
    assert 4 <= len(lines) <= 10, message
    assert max(len(line.replace(str(dest), "DIR")) for line in lines) <= 100, message
    assert name in lines[0] and str(dest) in lines[0]
    for m in mirrors:
        assert any(m + name in line and why in line for line in lines), (m, message)
    assert "--data DIR" in message and all(f in message for f in FILES)      # way out 1
    assert "bundled MNIST sample" in message                                   # way out 2


def test_env_mirrors_and_default_folder(tmp_path, served, serve, monkeypatch):
    source, md5s = served
    url, requests = serve(source)
    monkeypatch.setenv("MINISNN_MNIST_MIRRORS", f"{dead_url()}, {url.rstrip('/')}")
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path / "env-data"))
    assert download_mnist(progress=False, timeout=5, md5s=md5s) == tmp_path / "env-data"
    assert names_in(tmp_path / "env-data") == sorted(FILES)
    assert len(requests) == 4


def test_bundled_name_is_not_a_download_folder():
    with pytest.raises(ValueError, match="bundled"):
        download_mnist("mnist-sample", mirrors=["http://x/"])


# ----------------------------------------------------------------------------- the command line

def run_cli(argv, capsys):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_download_failure_explains_in_a_few_lines(tmp_path, monkeypatch, capsys):
    mirrors = [dead_url(), dead_url()]
    monkeypatch.setenv("MINISNN_MNIST_MIRRORS", ",".join(mirrors))
    dest = tmp_path / "d"
    status, out, err = run_cli(["download", "--data", dest, "--quiet"], capsys)
    assert status == 1 and out == "" and "Traceback" not in err
    assert err.startswith(f"minisnn: error: could not download {TRAIN_IMAGES} into {dest}")
    assert_explains_failure(err.replace("minisnn: error: ", ""), TRAIN_IMAGES, dest, mirrors,
                            "refused")
    assert names_in(dest) == []
    # the same from `train --download` (the folder is chosen the same way)
    status, out, err2 = run_cli(["train", "--data", dest, "--download", "--out", tmp_path / "o",
                                 "--quiet"], capsys)
    assert status == 1 and err2 == err and not (tmp_path / "o").exists()


def test_cli_download_refuses_other_files_and_force_replaces_them(tmp_path, served, serve,
                                                                   monkeypatch, capsys):
    source, md5s = served
    url, requests = serve(source)
    monkeypatch.setenv("MINISNN_MNIST_MIRRORS", url)
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / TRAIN_IMAGES).write_bytes(b"my own images")
    for argv in (["download", "--data", dest, "--quiet"],
                 ["train", "--data", dest, "--download", "--out", tmp_path / "o", "--quiet"]):
        status, out, err = run_cli(argv, capsys)
        assert status == 1 and "Traceback" not in err
        assert "not the official MNIST files" in err.splitlines()[0] and "--force" in err
        assert (dest / TRAIN_IMAGES).read_bytes() == b"my own images" and requests == []
    # --force reaches the downloader, which then replaces the file: our server's train images
    # are not the official ones, so the download itself fails on their checksum, and says so
    status, out, err = run_cli(["download", "--data", dest, "--quiet", "--force"], capsys)
    assert status == 1 and "checksum mismatch" in err and requests == ["/" + TRAIN_IMAGES]
    assert (dest / TRAIN_IMAGES).read_bytes() == b"my own images"   # never half-replaced


def test_cli_download_success(tmp_path, served, serve, monkeypatch, capsys):
    source, md5s = served
    url, _ = serve(source)
    import minisnn.data.download as download_module    # expect our server's train files
    monkeypatch.setattr(download_module, "FILES", {**FILES, **md5s})
    monkeypatch.setenv("MINISNN_MNIST_MIRRORS", url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINISNN_DATA", raising=False)
    status, out, err = run_cli(["download", "--quiet"], capsys)
    assert status == 0, err
    assert out.strip() == f"MNIST is in {os.path.join('data', 'mnist')}"
    assert names_in(tmp_path / "data" / "mnist") == sorted(FILES)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="md5s"):
        download_mnist(tmp_path, mirrors=["http://x/"], md5s={"nope.gz": "0" * 32})
    with pytest.raises(ValueError, match="mirrors"):
        download_mnist(tmp_path, mirrors=[])
    with pytest.raises(ValueError, match="mirrors"):
        download_mnist(tmp_path, mirrors="http://x/")


def test_loading_data_does_not_import_the_network_modules():
    # a training process should not pay for http/ssl/email (about 7 MB) just to read IDX files
    import subprocess
    import sys
    code = ("import sys, minisnn.train, minisnn.cli; "
            "print(sorted(m for m in ('urllib.request', 'http.client', 'ssl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
