"""MNIST and Fashion-MNIST: which datasets exist, where they come from, how they load.

Where the images come from (first match wins):

1. a local directory: the ``data_dir`` argument, else ``VAE_TUTORIAL_DATA_DIR``. When a
   directory is given it is used or an error says what is missing: there is no silent fallback;
2. a download through ``keras.datasets`` (unless offline: ``download=False`` or
   ``VAE_TUTORIAL_OFFLINE=1``);
3. the bundled sample of that dataset: its official test split (10,000 images) split 8,000 /
   2,000 by a fixed random permutation stratified by label, announced by one ``NOTICE:`` line
   on stdout. MNIST and Fashion-MNIST each have one (``sample_data/README.md``).

The images stay ``uint8``; ``batching`` turns them into float32 batches. The IDX reader is in
``idx``. ``binarize_images``, ``make_batches``, ``num_batches`` and ``read_idx`` are
re-exported here, where the loaded data is.

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae_tutorial import environment
from vae_tutorial.batching import BINARIZE_MODES, binarize_images, make_batches, num_batches
from vae_tutorial.idx import DataError, aligned, read_idx
from vae_tutorial.validation import IMAGE_SHAPE, check_int

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

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# The bundled samples: each dataset's official test split, unmodified (see sample_data/README.md).
_SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
_SAMPLE_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "fashion-mnist-t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "fashion-mnist-t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}
_SAMPLE_N_TEST = 2000
_SAMPLE_SPLIT_SEED = 20_240_801  # fixes the sample's train / held-out split for good


@dataclass(frozen=True)
class _Spec:
    title: str
    keras_module: str
    subdirs: tuple[str, ...]
    npz_names: tuple[str, ...]
    class_names: tuple[str, ...]
    where_to_get: str
    sample_files: tuple[str, str]  # the bundled sample's images and labels, in _SAMPLE_DIR


_DATASETS = {
    "mnist": _Spec(
        title="MNIST",
        keras_module="mnist",
        subdirs=("mnist",),
        npz_names=("mnist.npz",),
        class_names=tuple(str(d) for d in range(10)),
        where_to_get="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
        sample_files=("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
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
        sample_files=(
            "fashion-mnist-t10k-images-idx3-ubyte.gz",
            "fashion-mnist-t10k-labels-idx1-ubyte.gz",
        ),
    ),
}


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
        n = check_int(n, f"subset: {what}", 0, fix="None keeps every image.")
        if n > available:
            raise ValueError(
                f"subset: {what}={n:,} but this data has only {available:,} images; "
                f"ask for at most {available:,} (each bundled sample, MNIST's and "
                "Fashion-MNIST's, has 8,000 train and 2,000 test images)."
            )
        return n

    def __repr__(self) -> str:
        return (
            f"ImageData(name={self.name!r}, train={self.train_images.shape}, "
            f"test={self.test_images.shape}, source={self.source!r})"
        )


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
    return aligned(images), labels.astype(np.uint8, copy=False)


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
    ) + f" to download {spec.title} (or, offline, to use the bundled 10,000-image sample)"
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
            arrays = {key: read_idx(path) for key, path in found.items() if path is not None}
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


_DOWNLOAD_HOST = "storage.googleapis.com"  # where keras.datasets downloads both datasets


def _can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host`` opens: the download is worth trying."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:  # no DNS, no route, refused, timed out
        return False


def _short_reason(exc: BaseException) -> str:
    """The first line of an error, without the URL and OS error keras wraps it in."""
    text = (str(exc).strip().splitlines() or [""])[0].split(" -- ")[-1]
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


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


def sample_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out positions of a bundled sample: 8,000 / 2,000, stratified by label.

    The same split for MNIST's sample and Fashion-MNIST's. Not the first 8,000 / last 2,000:
    MNIST's official test split's second half comes from other writers (its mean intensity is
    0.142 against 0.130), which would bias held-out scores.
    A fixed permutation, sorted by label (stable), puts each label's images in a random order
    one after another; every fifth position is held out, so each label keeps its share. Both
    index arrays come back in a random order, so their first images are a fair subset too.
    Taught in notebook 05_training_on_mnist.
    """
    rng = np.random.default_rng(_SAMPLE_SPLIT_SEED)
    permutation = rng.permutation(len(labels))
    by_label = permutation[np.argsort(labels[permutation], kind="stable")]
    every = len(labels) // _SAMPLE_N_TEST
    held_out = np.zeros(len(labels), bool)
    held_out[by_label[::every][:_SAMPLE_N_TEST]] = True
    return rng.permutation(np.flatnonzero(~held_out)), rng.permutation(np.flatnonzero(held_out))


def _load_sample(name: str) -> ImageData:
    spec = _DATASETS[name]
    arrays = []
    for fname in spec.sample_files:
        path, expected = _SAMPLE_DIR / fname, _SAMPLE_SHA256[fname]
        if not path.is_file():
            raise DataError(
                f"the bundled {spec.title} sample file {path} is missing: the installation is "
                "incomplete. Fix: reinstall vae_tutorial (pip install --force-reinstall), or "
                "get the full data (internet, or VAE_TUTORIAL_DATA_DIR / data_dir)."
            )
        digest = _sha256(path)
        if digest != expected:
            raise DataError(
                f"the bundled {spec.title} sample file {path} has sha256 {digest}, expected "
                f"{expected}: it is damaged or was modified. Fix: reinstall vae_tutorial "
                "(pip install --force-reinstall), or get the full data (internet, or "
                "VAE_TUTORIAL_DATA_DIR / data_dir)."
            )
        arrays.append(read_idx(path))
    images, labels = arrays
    train, test = sample_split(labels)
    split = {
        "train_images": images[train],
        "train_labels": labels[train],
        "test_images": images[test],
        "test_labels": labels[test],
    }
    source = (
        f"bundled {spec.title} sample: the official {spec.title} test split "
        f"({len(labels):,} images), split by a fixed random permutation stratified by label "
        f"into {len(train):,} train and {len(test):,} test images"
    )
    return _from_arrays(name, source, split, f"bundled {spec.title} sample")


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
    ``VAE_TUTORIAL_OFFLINE=1``". When the dataset cannot be downloaded, its bundled sample
    (its official test split, 8,000 train / 2,000 test) is used and one short ``NOTICE:`` line
    on stdout says so (stdout: a notebook shows it as plain output, not as an error block).

    Taught in notebooks 05_training_on_mnist (MNIST) and 07_convolutional_vae (Fashion-MNIST).
    """
    key = _canonical_name(name)
    spec = _DATASETS[key]
    from_env = data_dir is None
    folder = Path(data_dir).expanduser() if data_dir is not None else environment.data_dir()
    if folder is not None:
        return _load_from_dir(key, folder, from_env)

    if download is None:
        download = not environment.offline()
        why_not = "offline: VAE_TUTORIAL_OFFLINE=1"
    else:
        why_not = "download=False"
    if download and not _can_reach(_DOWNLOAD_HOST):
        download = False
        why_not = f"{_DOWNLOAD_HOST} cannot be reached"
    if download:
        try:
            return _download(key)
        except Exception as exc:  # keras raises a bare Exception on network errors
            why_not = f"the download failed ({_short_reason(exc)})"

    data = _load_sample(key)
    print(
        f"NOTICE: using the bundled {spec.title} sample ({len(data.train_images):,} train / "
        f"{len(data.test_images):,} test images), not the full dataset ({why_not}); set "
        "VAE_TUTORIAL_DATA_DIR to use your own files.",
        flush=True,
    )
    return data
