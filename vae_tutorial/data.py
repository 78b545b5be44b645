"""MNIST and Fashion-MNIST: loading, binarization and ``tf.data`` input pipelines.

Where the images come from (first match wins):

1. a local directory: the ``data_dir`` argument, else ``VAE_TUTORIAL_DATA_DIR``. When a
   directory is given it is used or an error says what is missing: there is no silent fallback;
2. a download through ``keras.datasets`` (unless offline: ``download=False`` or
   ``VAE_TUTORIAL_OFFLINE=1``);
3. MNIST only: the bundled sample, the official MNIST test split (10,000 images) split 8,000 /
   2,000, announced by one ``NOTICE:`` line on stderr.

Images stay ``uint8`` until a batch is formed; :func:`make_batches` turns each batch into
float32 values in [0, 1], binarized or not.

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from vae_tutorial import config

__all__ = [
    "BINARIZE_MODES",
    "DataError",
    "ImageData",
    "binarize_images",
    "load_dataset",
    "make_batches",
    "num_batches",
    "read_idx",
]

BINARIZE_MODES = ("none", "static", "dynamic")

IMAGE_SHAPE = (28, 28)
_ALIGN = 64  # bytes; see _aligned_empty
_MAX_IDX_BYTES = 2**32  # a header promising more than this is corrupt
_STATIC_CHUNK = 4096  # images per chunk of the static draw (16 MB of float32 noise)
_STATIC_STREAM = 0x5747  # keeps the static draw apart from other uses of the same seed

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# The bundled sample: the official MNIST test split, unmodified (see sample_data/README.md).
_SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
_SAMPLE_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_SAMPLE_N_TRAIN = 8000


@dataclass(frozen=True)
class _Spec:
    title: str
    keras_module: str
    subdirs: tuple[str, ...]
    npz_names: tuple[str, ...]
    class_names: tuple[str, ...]
    where_to_get: str


_DATASETS = {
    "mnist": _Spec(
        title="MNIST",
        keras_module="mnist",
        subdirs=("mnist",),
        npz_names=("mnist.npz",),
        class_names=tuple(str(d) for d in range(10)),
        where_to_get="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    ),
    "fashion_mnist": _Spec(
        title="Fashion-MNIST",
        keras_module="fashion_mnist",
        subdirs=("fashion-mnist", "fashion_mnist"),
        npz_names=("fashion_mnist.npz", "fashion-mnist.npz"),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        where_to_get="the four *-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist",
    ),
}


class DataError(ValueError):
    """A dataset could not be found, read or trusted; the message names the file and the fix.

    Taught in notebook 05_training_on_mnist.
    """


# --------------------------------------------------------------------------------------------
# The dataset container


@dataclass(frozen=True, eq=False)
class ImageData:
    """Train and test images (N, 28, 28) uint8 with their labels (N,) uint8.

    ``source`` says in a few words where the data came from; ``class_names`` gives the label
    names; ``subset(n_train, n_test)`` keeps the first images of each split (quick mode).

    Taught in notebook 05_training_on_mnist.
    """

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    @property
    def class_names(self) -> tuple[str, ...]:
        """The label names: the digits "0".."9" for MNIST, the 10 clothing names otherwise.

        Taught in notebook 05_training_on_mnist.
        """
        return _DATASETS[self.name].class_names

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> ImageData:
        """The first ``n_train`` train and first ``n_test`` test images (None keeps all).

        The arrays are views, not copies. Asking for more images than there are is an error.

        Taught in notebook 05_training_on_mnist.
        """
        n_train = self._check_count("n_train", n_train, len(self.train_images))
        n_test = self._check_count("n_test", n_test, len(self.test_images))
        return dataclasses.replace(
            self,
            source=f"{self.source}; subset: first {n_train:,} train, first {n_test:,} test",
            train_images=self.train_images[:n_train],
            train_labels=self.train_labels[:n_train],
            test_images=self.test_images[:n_test],
            test_labels=self.test_labels[:n_test],
        )

    @staticmethod
    def _check_count(what: str, n: int | None, available: int) -> int:
        if n is None:
            return available
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"subset: {what} must be a non-negative int or None, got {n!r}.")
        if n > available:
            raise ValueError(
                f"subset: {what}={n:,} but this data has only {available:,} images; "
                f"ask for at most {available:,} (the bundled MNIST sample has 8,000 train and "
                "2,000 test images)."
            )
        return int(n)

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, train={self.train_images.shape}, "
            f"test={self.test_images.shape}, source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------
# IDX files


def _aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array whose data starts on a 64-byte boundary.

    TensorFlow copies an unaligned numpy array twice when it makes a tensor of it (measured:
    +90 MB instead of +45 MB for the 60,000 Fashion-MNIST training images).
    """
    n = int(np.prod(shape))
    buffer = np.empty(n + _ALIGN, dtype=np.uint8)
    offset = (-buffer.ctypes.data) % _ALIGN
    return buffer[offset : offset + n].reshape(shape)


def _aligned(images: np.ndarray) -> np.ndarray:
    if images.ctypes.data % _ALIGN == 0:
        return images
    out = _aligned_empty(images.shape)
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
            if np.prod(shape, dtype=object) > _MAX_IDX_BYTES:
                raise DataError(
                    f"{path} is corrupt: its header claims shape {shape}, far larger than any "
                    f"IDX dataset this package reads; {fix}"
                )
            out = _aligned_empty(shape)
            view = memoryview(out).cast("B")
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


# --------------------------------------------------------------------------------------------
# Loading


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _check_split(
    spec: _Spec, split: str, images: np.ndarray, labels: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Shapes, dtypes, counts and label range of one split; returns (images, uint8 labels)."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{where}: {split} images have shape {images.shape} and dtype {images.dtype}, "
            f"expected (N, 28, 28) uint8; these are not {spec.title} image files."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: {split} labels have shape {labels.shape} and dtype {labels.dtype}, "
            f"expected (N,) integers; these are not {spec.title} label files."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{where}: {len(images):,} {split} images but {len(labels):,} {split} labels; "
            "the image and label files do not belong together: re-download both."
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(
            f"{where}: {split} labels range over {labels.min()}..{labels.max()}, expected 0..9; "
            f"these are not {spec.title} label files."
        )
    return _aligned(images), labels.astype(np.uint8, copy=False)


def _from_arrays(name: str, source: str, arrays: dict[str, np.ndarray], where: str) -> ImageData:
    spec = _DATASETS[name]
    train = _check_split(spec, "train", arrays["train_images"], arrays["train_labels"], where)
    test = _check_split(spec, "test", arrays["test_images"], arrays["test_labels"], where)
    return ImageData(name, source, train[0], train[1], test[0], test[1])


def _load_npz(name: str, path: Path) -> ImageData:
    keys = {
        "train_images": "x_train",
        "train_labels": "y_train",
        "test_images": "x_test",
        "test_labels": "y_test",
    }
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys.values() if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path} lacks the arrays {', '.join(missing)} (has {', '.join(npz.files)}); "
                    "a Keras-style npz holds x_train, y_train, x_test, y_test: re-download it."
                )
            arrays = {ours: npz[theirs] for ours, theirs in keys.items()}
    except DataError:
        raise
    except Exception as exc:  # BadZipFile, ValueError, OSError, EOFError ...
        raise DataError(
            f"{path} could not be read as an npz file ({type(exc).__name__}: {exc}); "
            "re-download it."
        ) from exc
    return _from_arrays(name, f"{_DATASETS[name].title} from {path}", arrays, str(path))


def _load_from_dir(name: str, folder: Path, from_env: bool) -> ImageData:
    spec = _DATASETS[name]
    origin = f"VAE_TUTORIAL_DATA_DIR={folder}" if from_env else f"data_dir={folder}"
    folder = folder.resolve()
    no_dir_fix = (
        "unset VAE_TUTORIAL_DATA_DIR" if from_env else "call load_dataset without data_dir"
    ) + (
        " to download MNIST (or, offline, to use the bundled 10,000-image sample)"
        if name == "mnist"
        else f" to download {spec.title}"
    )
    if not folder.is_dir():
        raise DataError(
            f"{spec.title}: {origin} is not a directory. Fix: point it at a folder holding "
            f"the four IDX files or {spec.npz_names[0]}, or {no_dir_fix}."
        )
    others = {s for key, other in _DATASETS.items() if key != name for s in other.subdirs}
    if folder.name.lower() in others - set(spec.subdirs):
        raise DataError(
            f"{spec.title}: {origin} looks like the folder of another dataset "
            f"(its name is {folder.name!r}). Fix: pass its parent folder or the "
            f"{spec.subdirs[0]} folder."
        )

    candidates = [folder / sub for sub in spec.subdirs if (folder / sub).is_dir()] + [folder]
    partial: list[str] = []
    for cand in candidates:
        found = {key: _find_file(cand, stem) for key, stem in _IDX_FILES.items()}
        if all(found.values()):
            arrays = {key: read_idx(path) for key, path in found.items()}
            return _from_arrays(
                name, f"{spec.title} IDX files in {cand}", arrays, f"IDX files in {cand}"
            )
        for npz_name in spec.npz_names:
            if (cand / npz_name).is_file():
                return _load_npz(name, cand / npz_name)
        if any(found.values()):
            missing = [f"{_IDX_FILES[k]}[.gz]" for k, p in found.items() if p is None]
            partial.append(f"{cand} has some IDX files but is missing {', '.join(missing)}")

    looked_in = " and ".join(str(c) for c in candidates)
    wanted = ", ".join(f"{stem}[.gz]" for stem in _IDX_FILES.values())
    detail = "; ".join(partial) if partial else "none of these files is there"
    raise DataError(
        f"{spec.title} files not found for {origin}: looked in {looked_in} for {wanted} "
        f"or {' / '.join(spec.npz_names)}; {detail}. Fix: download {spec.where_to_get} into "
        f"{folder / spec.subdirs[0]}, or {no_dir_fix}."
    )


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _download(name: str) -> ImageData:
    import keras

    spec = _DATASETS[name]
    loader = getattr(keras.datasets, spec.keras_module).load_data
    (x_train, y_train), (x_test, y_test) = loader()
    arrays = {
        "train_images": np.asarray(x_train),
        "train_labels": np.asarray(y_train),
        "test_images": np.asarray(x_test),
        "test_labels": np.asarray(y_test),
    }
    source = (
        f"{spec.title} from keras.datasets.{spec.keras_module}.load_data() "
        "(downloaded once, cached under ~/.keras/datasets)"
    )
    return _from_arrays(name, source, arrays, f"keras.datasets.{spec.keras_module}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_sample() -> ImageData:
    arrays = {}
    for fname, expected in _SAMPLE_SHA256.items():
        path = _SAMPLE_DIR / fname
        if not path.is_file():
            raise DataError(
                f"the bundled MNIST sample file {path} is missing: the installation is "
                "incomplete. Fix: reinstall vae_tutorial (pip install --force-reinstall), or "
                "get the full data (internet, or VAE_TUTORIAL_DATA_DIR / data_dir)."
            )
        digest = _sha256(path)
        if digest != expected:
            raise DataError(
                f"the bundled MNIST sample file {path} has sha256 {digest}, expected "
                f"{expected}: it is damaged or was modified. Fix: reinstall vae_tutorial "
                "(pip install --force-reinstall), or get the full data (internet, or "
                "VAE_TUTORIAL_DATA_DIR / data_dir)."
            )
        arrays[fname] = read_idx(path)
    images = arrays["t10k-images-idx3-ubyte.gz"]
    labels = arrays["t10k-labels-idx1-ubyte.gz"]
    n = _SAMPLE_N_TRAIN
    split = {
        "train_images": images[:n],
        "train_labels": labels[:n],
        "test_images": images[n:],
        "test_labels": labels[n:],
    }
    source = (
        "bundled MNIST sample: the official MNIST test split (10,000 images); its first "
        f"{n:,} images serve as train, its last {len(images) - n:,} as test"
    )
    return _from_arrays("mnist", source, split, "bundled MNIST sample")


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_") if isinstance(name, str) else None
    if key not in _DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: 'mnist', 'fashion_mnist' (or 'fashion-mnist')."
        )
    return key


def load_dataset(
    name: str = "mnist", data_dir: str | Path | None = None, *, download: bool | None = None
) -> ImageData:
    """Load MNIST or Fashion-MNIST as uint8 arrays in an :class:`ImageData`.

    ``name``: "mnist" or "fashion_mnist" ("fashion-mnist" works too).
    ``data_dir``: a folder holding the four IDX files (``train-images-idx3-ubyte[.gz]``,
    ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
    ``t10k-labels-idx1-ubyte[.gz]``) or a Keras ``mnist.npz``, either directly or in a
    subfolder named after the dataset (``mnist/``, ``fashion-mnist/``). Defaults to
    ``VAE_TUTORIAL_DATA_DIR``. A given folder is always used: if it lacks the files, a
    :class:`DataError` says what is missing.
    ``download``: without a folder, download through ``keras.datasets``; None means "unless
    ``VAE_TUTORIAL_OFFLINE=1``". When MNIST cannot be downloaded, the bundled sample (the
    official MNIST test split, 8,000 train / 2,000 test) is used and one ``NOTICE:`` line on
    stderr says so; for Fashion-MNIST it is a :class:`DataError`.

    Taught in notebook 05_training_on_mnist.
    """
    key = _canonical_name(name)
    spec = _DATASETS[key]
    from_env = data_dir is None
    folder = Path(data_dir).expanduser() if data_dir is not None else config.data_dir()
    if folder is not None:
        return _load_from_dir(key, folder, from_env)

    if download is None:
        download = not config.offline()
        why_not = "offline mode is on (VAE_TUTORIAL_OFFLINE=1)"
    else:
        why_not = "download=False was passed"
    if download:
        try:
            return _download(key)
        except Exception as exc:  # keras raises a bare Exception on network errors
            why_not = f"the download failed ({_short_reason(exc)})"

    if key == "mnist":
        data = _load_sample()
        print(
            "NOTICE: vae_tutorial is using its bundled MNIST sample, not full MNIST, because "
            f"{why_not}: the official MNIST test split (10,000 images) split into "
            f"{len(data.train_images):,} train and {len(data.test_images):,} test images. "
            "For the full 60,000 + 10,000 images connect to the internet, or set "
            "VAE_TUTORIAL_DATA_DIR (or pass data_dir=) to a folder with the MNIST IDX files "
            "or mnist.npz.",
            file=sys.stderr,
            flush=True,
        )
        return data
    wanted = ", ".join(f"{stem}.gz" for stem in _IDX_FILES.values())
    raise DataError(
        f"{spec.title} is not available: {why_not}, no data directory is set, and no "
        f"{spec.title} sample is bundled. Fix: connect to the internet (and unset "
        "VAE_TUTORIAL_OFFLINE), or pass data_dir= / set VAE_TUTORIAL_DATA_DIR to a folder "
        f"holding the four IDX files ({wanted})."
    )


# --------------------------------------------------------------------------------------------
# Binarization and batches


def _check_binarize(binarize: str) -> str:
    if binarize not in BINARIZE_MODES:
        raise ValueError(
            f"binarize={binarize!r} is not a valid choice; use one of "
            f"{', '.join(repr(m) for m in BINARIZE_MODES)}."
        )
    return binarize


def _check_int(what: str, value, minimum: int, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}.")
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be between {minimum} and {maximum}, got {value}.")
    return int(value)


def _check_images(images, caller: str) -> np.ndarray:
    if isinstance(images, ImageData):
        raise TypeError(
            f"{caller} takes an image array, not an ImageData: pass data.train_images "
            "or data.test_images."
        )
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"{caller} expects the raw uint8 images (0-255) from load_dataset, got dtype "
            f"{images.dtype}. Pass data.train_images itself, not a float copy (the pipeline "
            "converts each batch); floats in [0, 1] convert back with "
            "np.round(x * 255).astype(np.uint8)."
        )
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
        hint = (
            " Reshape flat images with images.reshape(-1, 28, 28)."
            if images.ndim == 2 and images.shape[1:] == (784,)
            else ""
        )
        raise ValueError(
            f"{caller} expects images of shape (N, 28, 28) with N >= 1, got {images.shape}.{hint}"
        )
    return images


def _as_tensor(images: np.ndarray) -> tf.Tensor:
    """A uint8 tensor of ``images``, without a copy when possible (DLPack, 64-byte aligned)."""
    if images.flags.c_contiguous and images.ctypes.data % _ALIGN == 0:
        try:
            return tf.experimental.dlpack.from_dlpack(images.__dlpack__())
        except Exception:  # read-only array, old numpy ...: fall back to a copy
            pass
    return tf.convert_to_tensor(images)


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the images in epoch ``epoch``: a permutation fixed by (seed, epoch) alone.

    Computed with numpy rather than ``Dataset.shuffle``: tf.data's shuffle order also depends
    on TensorFlow's global seed (``tf.random.set_seed`` / ``keras.utils.set_random_seed``), so
    an epoch would not be reproducible after a restart that sets a different global seed.
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def _static_draw(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli(intensity) draw per pixel, as uint8 0/1, fixed by ``seed`` alone.

    Made in chunks with numpy, so the only full-size copy is this uint8 one.
    """
    rng = np.random.default_rng([seed, _STATIC_STREAM])
    draw = np.empty(images.shape, np.uint8)
    for start in range(0, len(images), _STATIC_CHUNK):
        chunk = images[start : start + _STATIC_CHUNK]
        draw[start : start + len(chunk)] = rng.random(chunk.shape, np.float32) * 255 < chunk
    return draw


def _to_float(images, binarize: str, seed: int, epoch: int, batch_number) -> tf.Tensor:
    """A uint8 batch (already 0/1 for "static") -> float32 values for the likelihood."""
    if binarize == "static":
        return tf.cast(images, tf.float32)
    probs = tf.cast(images, tf.float32) / 255.0
    if binarize == "none":
        return probs
    # A fresh draw per (seed, epoch, batch): one vectorized stateless call per batch.
    counter = tf.constant(epoch << 32, tf.int64) + tf.cast(batch_number, tf.int64)
    uniform = tf.random.stateless_uniform(
        tf.shape(probs), seed=tf.stack([tf.constant(seed, tf.int64), counter])
    )
    return tf.cast(uniform < probs, tf.float32)


def binarize_images(images, binarize: str = "dynamic", *, seed: int = 0, epoch: int = 0):
    """Turn uint8 images (N, 28, 28) into float32 values for a Bernoulli likelihood.

    - "none": grey levels ``images / 255`` in [0, 1]. A Bernoulli likelihood on grey levels is
      not a proper likelihood (it is the continuous cross-entropy): fine for training, but its
      nats are not comparable with published numbers.
    - "static": one fixed Bernoulli(intensity) draw per image, fixed by ``seed`` and the
      image's position in ``images``: the same every epoch ("statically binarized MNIST").
    - "dynamic": a fresh Bernoulli(intensity) draw every time an image is used, fixed by
      (seed, epoch): the literature's protocol (Burda et al. 2015).

    Taught in notebook 02_the_elbo_loss.
    """
    images = _check_images(images, "binarize_images")
    binarize = _check_binarize(binarize)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    epoch = _check_int("epoch", epoch, 0, 2**30)
    if binarize == "static":
        images = _static_draw(images, seed)
    return _to_float(images, binarize, seed, epoch, 0)


def num_batches(n_images: int, batch_size: int, drop_remainder: bool = False) -> int:
    """How many batches :func:`make_batches` yields for ``n_images`` images.

    Taught in notebook 05_training_on_mnist.
    """
    n_images = _check_int("n_images", n_images, 0, 2**62)
    batch_size = _check_int("batch_size", batch_size, 1)
    return n_images // batch_size if drop_remainder else -(-n_images // batch_size)


def make_batches(
    images,
    *,
    batch_size: int = 128,
    binarize: str = "dynamic",
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of float32 batches (B, 28, 28) in [0, 1] for one epoch.

    ``images``: uint8 (N, 28, 28), e.g. ``data.train_images``; they stay uint8 until a batch
    is formed, so no float copy of the dataset is ever made. ``binarize``: "none", "static"
    or "dynamic" (see :func:`binarize_images`). With ``shuffle`` the order is a permutation of
    all N images fixed by (seed, epoch) alone (``np.random.default_rng([seed, epoch])``, not
    TensorFlow's global seed): build one dataset per epoch with ``epoch=e``, and epoch e is
    the same after a restart, order and binarization. Iterating the dataset twice repeats the
    epoch. The batches read ``images`` in place: do not modify the array while iterating.
    The last, smaller batch is kept unless ``drop_remainder``.

    Taught in notebook 05_training_on_mnist.
    """
    images = _check_images(images, "make_batches")
    batch_size = _check_int("batch_size", batch_size, 1)
    binarize = _check_binarize(binarize)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    epoch = _check_int("epoch", epoch, 0, 2**30)

    # The images enter the pipeline as one uint8 tensor sharing the numpy array's memory; the
    # elements are image indices in this epoch's order (a full permutation, the same as a
    # shuffle buffer as large as the dataset, but holding 8 bytes per image instead of a copy
    # of the images); each batch of indices is then gathered, cast and binarized in one map.
    if binarize == "static":
        images = _aligned(_static_draw(images, seed))
    images_t = _as_tensor(images)
    if shuffle:
        order = _epoch_order(len(images), seed, epoch)
    else:
        order = np.arange(len(images), dtype=np.int64)
    ds = tf.data.Dataset.from_tensor_slices(order)
    ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder)).enumerate()
    ds = ds.map(
        lambda number, idx: _to_float(tf.gather(images_t, idx), binarize, seed, epoch, number),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
