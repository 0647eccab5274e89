"""Reading IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), then one big-endian uint32 per dimension, then the items.
"""
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

# IDX dtype codes. Items are stored big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A dataset file is missing, unreadable or malformed. The message names the file."""


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed or raw) into a native-endian NumPy array.

    The items are streamed straight into the array that is returned, so reading a file costs
    little more memory than its result (no whole decompressed copy first)."""
    path, gz = Path(path), False
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"   # gzip magic bytes, whatever the file is called
        with (gzip.open if gz else open)(path, "rb") as f:
            return _read_idx_stream(f, path)
    except (OSError, EOFError, zlib.error) as exc:
        if gz:
            raise DataError(f"{path}: corrupt gzip stream: {exc}") from exc
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc


def _read_idx_stream(f, path):
    """The header checks, then the items read into a new array; `f` is an open binary file."""
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    zero0, zero1, code, ndim = head
    if zero0 != 0 or zero1 != 0:
        raise DataError(f"{path}: not an IDX file: magic number starts with "
                        f"0x{zero0:02x} 0x{zero1:02x}, expected 0x00 0x00")
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(f"{path}: unsupported IDX dtype code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header says 0 dimensions")
    dim_bytes = f.read(4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need "
                        f"{4 + 4 * ndim} bytes, file has {4 + len(dim_bytes)}")
    dims = struct.unpack(f">{ndim}I", dim_bytes)

    dtype = np.dtype(_IDX_DTYPES[code])
    items = np.empty(int(np.prod(dims, dtype=np.int64)), dtype=dtype)
    buf = memoryview(items.view(np.uint8))
    want, got = len(buf), 0
    while got < want:   # in chunks: gzip's reader makes a temporary the size of each request
        n = f.readinto(buf[got:got + (1 << 20)])
        if not n:
            break
        got += n
    if got < want:
        raise DataError(f"{path}: truncated: expected {want} bytes of data for shape "
                        f"{dims}, got {got}")
    extra = len(f.read())
    if extra:
        raise DataError(f"{path}: too long: expected {want} bytes of data for shape "
                        f"{dims}, got {want + extra} ({extra} extra)")
    # big-endian items to native order (no copy for single bytes)
    return items.astype(dtype.newbyteorder("="), copy=False).reshape(dims)

