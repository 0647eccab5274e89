"""Atomic writes: build the new version beside the target, then rename it over the target.

`atomic_open` / `atomic_write` do it for one file, `atomic_folder` for a whole folder of files
(a training run's: the checkpoint and its loss history always belong together). A reader sees
the old version or the new one, never half of one or a mix of both; an interrupt, a full disk
or a crash leaves the old version untouched and no temporary file behind (a crash that kills
the process outright, SIGKILL or a power cut, may leave one hidden `.NAME.tmp-*` entry, which
`remove_leftovers` deletes). Data is flushed to disk (fsync) before the rename.
"""
import contextlib
import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _normal_rights(path, mode):
    """mkstemp/mkdtemp make private entries; give them the rights of a normal new one."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:             # some systems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """`with atomic_open(path) as f: f.write(...)`: `path` appears only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _normal_rights(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Write bytes or text to `path` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


# ----------------------------------------------------------------------------- folders

def leftover_prefix(target):
    """Hidden names beside `target` that atomic_folder uses while it works."""
    return f".{Path(target).name}.tmp-"


@contextlib.contextmanager
def atomic_folder(target):
    """`with atomic_folder(target) as tmp: write files into tmp`: then `target` becomes that
    folder in one step, and the folder it replaces is deleted. Any error or interrupt inside
    the block (or during the swap) leaves `target` as it was and removes `tmp`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=leftover_prefix(target)))
    try:
        _normal_rights(tmp, 0o777)
        yield tmp
        _fsync_dir(tmp)
        _swap_in(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)   # after a swap: the old folder, now at tmp


def _swap_in(new, target):
    """Put the folder `new` at `target`; the old `target`, if any, ends up at `new`."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    # No atomic exchange here (another OS, an old kernel or a file system without it): two
    # renames. Between them `target` is missing for an instant; both folders stay whole.
    side = Path(tempfile.mkdtemp(dir=target.parent, prefix=leftover_prefix(target)))
    os.rmdir(side)
    try:
        os.rename(target, side)
        os.rename(new, target)
    except BaseException:
        if side.exists() and not target.exists():   # put the old folder back
            os.rename(side, target)
        raise
    os.rename(side, new)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a, b):
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where that
    is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint)
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):      # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot do it
        return False
    raise OSError(err, os.strerror(err), str(b))


def remove_leftovers(target):
    """Delete what an atomic_folder(target) killed mid-way left beside `target`. Call it only
    while no other process writes `target` (hold its RunLock). Returns the names removed."""
    target = Path(target)
    removed = []
    if target.parent.is_dir():
        for entry in target.parent.iterdir():
            if entry.name.startswith(leftover_prefix(target)):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
                removed.append(entry.name)
    return removed
