"""Downloading MNIST: mirrors tried in turn, MD5-checked, atomic, never over other files.

The network modules (urllib, http, ssl) are imported only when a download starts: a process
that only reads data does not pay for them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .datasets import FILES, _bundled, _md5_of_file, default_data_dir

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class DownloadError(RuntimeError):
    """A download did not happen: no mirror delivered a file with the expected MD5, or the target
    folder holds other files, which are never overwritten unless asked (`force`).

    `summary` is one line; `details` a few short lines (the mirrors tried, the ways out);
    str() is both, one per line."""

    def __init__(self, summary: str, details=()):
        self.summary, self.details = summary, tuple(details)
        super().__init__("\n".join((summary, *self.details)))



def download_mnist(folder=None, mirrors=None, progress=True, timeout=30,
                   md5s: dict | None = None, force: bool = False) -> Path:
    """Download the four MNIST files into `folder` (default: default_data_dir()).

    A file already there with the right MD5 is kept without touching the network. A file there
    with another MD5 (another data set, a damaged copy) is never overwritten unless `force`:
    without it nothing is downloaded and DownloadError says which files are in the way.
    Otherwise each mirror is tried in turn (`mirrors`, else $MINISNN_MNIST_MIRRORS,
    comma-separated, else MIRRORS). Each download streams into a hidden temporary file in
    `folder`, is checked against its MD5 and only then renamed into place, so a
    half-written file never carries the final name. `md5s` maps file names to
    expected MD5s that replace the official ones (for tests and private copies).
    Returns the folder; raises DownloadError when every mirror fails for a file.
    """
    if _bundled(folder):
        raise ValueError(f"{folder!r} is the name of the data set bundled with minisnn, not a "
                         f"folder to download into; give a path such as data/mnist")
    folder = Path(folder) if folder is not None else default_data_dir()
    if mirrors is None:
        env = os.environ.get("MINISNN_MNIST_MIRRORS", "")
        mirrors = [m.strip() for m in env.split(",") if m.strip()] or MIRRORS
    if isinstance(mirrors, str) or not mirrors:
        raise ValueError(f"mirrors must be a non-empty list of URLs, got {mirrors!r}")
    unknown = set(md5s or {}) - set(FILES)
    if unknown:
        raise ValueError(f"md5s has unknown file names {sorted(unknown)}; known: {list(FILES)}")
    expected = {**FILES, **(md5s or {})}

    todo, foreign = [], []
    for name, md5 in expected.items():
        final = folder / name
        if final.is_file():
            got = _md5_of_file(final)
            if got == md5:
                continue
            foreign.append(f"  {name}: MD5 {got}, expected {md5}")
        elif final.exists():
            foreign.append(f"  {name}: not a regular file")
        todo.append(name)
    if foreign and not force:
        raise DownloadError(
            f"{folder} holds {len(foreign)} file(s) that are not the official MNIST files; "
            f"nothing was downloaded or overwritten:",
            [*foreign, f"Download into another folder (--data DIR), or replace them: "
                       f"python -m minisnn download --data {folder} --force"])

    folder.mkdir(parents=True, exist_ok=True)
    for name in todo:
        final = folder / name
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            reason = _download_one(url, final, expected[name], progress, timeout)
            if reason is None:
                break
            failures.append(f"  {url}: {reason}")
        else:
            raise DownloadError(f"could not download {name} into {folder}; every mirror failed:",
                                [*failures, *_ways_out()])
    return folder


def _ways_out():
    """The two ways to go on without the download, for the error message."""
    names = list(FILES)
    return ("Ways out, without the network:",
            "  - copy the four MNIST files from elsewhere into one folder, and pass --data DIR:",
            f"    {names[0]}, {names[1]},",
            f"    {names[2]}, {names[3]}",
            "  - or leave out --download and --data: minisnn uses its bundled MNIST sample")


def _download_one(url: str, final: Path, md5: str, progress: bool, timeout: float):
    """Fetch `url` into `final` via a temp file. Returns None on success, else why not."""
    from http.client import HTTPException           # the network modules are imported only
    from urllib.error import HTTPError, URLError    # here: loading data does not need them
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    try:
        try:
            got = _stream(url, tmp, final.name, progress, timeout)
        except HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except URLError as exc:
            return _describe(exc.reason, timeout)
        except (OSError, HTTPException, ValueError) as exc:
            return _describe(exc, timeout)
        if got != md5:
            return f"checksum mismatch: got {got}, expected {md5}"
        os.replace(tmp, final)  # atomic on the same file system
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)  # already gone after a successful replace


def _stream(url: str, tmp: str, label: str, progress: bool, timeout: float) -> str:
    """Copy the body of `url` into the file `tmp`; return the MD5 hex digest of it."""
    import urllib.request
    from tqdm import tqdm
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with tqdm(total=total, desc=label, unit="B", unit_scale=True,
                  unit_divisor=1024, disable=not progress) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"connection closed early: got {received} of {total} bytes")
    return digest.hexdigest()


def _describe(exc, timeout: float) -> str:
    """A short, human reason for a network failure."""
    import socket
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
