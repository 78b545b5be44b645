"""IDX files (the format MNIST and Fashion-MNIST are distributed in) and uint8 memory.

Images are read into 64-byte aligned uint8 arrays, which TensorFlow can share without a
copy (:func:`as_tensor`). Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

ALIGN = 64  # bytes; see aligned_empty
MAX_IDX_BYTES = 2**32  # a header promising more than this is corrupt


class DataError(ValueError):
    """A dataset could not be found, read or trusted; the message names the file and the fix.

    Taught in notebook 05_training_on_mnist.
    """


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array whose data starts on a 64-byte boundary.

    TensorFlow copies an unaligned numpy array twice when it makes a tensor of it (measured:
    +90 MB instead of +45 MB for the 60,000 Fashion-MNIST training images).
    """
    n = int(np.prod(shape))
    buffer = np.empty(n + ALIGN, dtype=np.uint8)
    offset = (-buffer.ctypes.data) % ALIGN
    return buffer[offset : offset + n].reshape(shape)


def aligned(images: np.ndarray) -> np.ndarray:
    """``images`` itself if its data starts on a 64-byte boundary, else an aligned copy."""
    if images.ctypes.data % ALIGN == 0:
        return images
    out = aligned_empty(images.shape)
    out[...] = images
    return out


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped if its name ends in ``.gz``) into a uint8 numpy array.

    IDX: a big-endian 4-byte magic number ``0x0000 08 ndim`` (08 = unsigned bytes), one
    4-byte size per dimension, then the data. Anything else raises :class:`DataError`.

    Taught in notebook 05_training_on_mnist.
    """
    path = Path(path)
    fix = "re-download it."
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataError(f"{path} is truncated: it has no IDX header; {fix}")
            if head[:2] == b"\x1f\x8b":
                raise DataError(
                    f"{path} is gzip-compressed but its name does not end in .gz; "
                    "rename it to add .gz (or decompress it with gunzip)."
                )
            if head[0] != 0 or head[1] != 0 or head[2] != 0x08 or head[3] == 0:
                raise DataError(
                    f"{path} is not an IDX file of unsigned bytes: magic number 0x{head.hex()}, "
                    "expected 0x00000803 (images) or 0x00000801 (labels); check that this is "
                    f"the right file, or {fix}"
                )
            ndim = head[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path} is truncated inside its IDX header; {fix}")
            shape = struct.unpack(f">{ndim}I", dims_raw)
            if np.prod(shape, dtype=object) > MAX_IDX_BYTES:
                raise DataError(
                    f"{path} is corrupt: its header claims shape {shape}, far larger than any "
                    f"IDX dataset this package reads; {fix}"
                )
            out = aligned_empty(shape)
            # numpy declares ndarray a buffer (__buffer__) to type checkers from Python 3.12 on
            view = memoryview(out).cast("B")  # type: ignore[arg-type]
            filled = 0
            while filled < out.size:
                got = f.readinto(view[filled:])
                if not got:
                    break
                filled += got
            if filled < out.size:
                raise DataError(
                    f"{path} is truncated: its header promises shape {shape} "
                    f"({out.size:,} bytes of data) but only {filled:,} bytes are there; {fix}"
                )
            if f.read(1):
                raise DataError(
                    f"{path} has more data than its header declares (shape {shape}); {fix}"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a corrupt or incomplete gzip file ({exc}); {fix}") from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise DataError(f"cannot open {path} ({exc.strerror}); check the path.") from exc
    return out


def as_tensor(images: np.ndarray) -> tf.Tensor:
    """A tensor of ``images``, without a copy when possible (DLPack, 64-byte aligned)."""
    if images.flags.c_contiguous and images.ctypes.data % ALIGN == 0:
        try:
            return tf.experimental.dlpack.from_dlpack(images.__dlpack__())
        except Exception:  # read-only array, old numpy ...: fall back to a copy
            pass
    return tf.convert_to_tensor(images)
