"""Tests of vae_tutorial.data: loading (IDX, npz, download, bundled sample), errors,
binarization and the tf.data pipeline. They run offline: keras downloads are patched out."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial import data
from vae_tutorial.batching import gather_images, resident_images
from vae_tutorial.data import (
    DataError,
    ImageData,
    binarize_images,
    load_dataset,
    make_batches,
    num_batches,
    read_idx,
)
from vae_tutorial.idx import aligned

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "vae_tutorial" / "sample_data"

# The official digests of the MNIST test split (as published with the shared data).
OFFICIAL_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


@pytest.fixture(autouse=True)
def _offline_and_clean_env(monkeypatch):
    """No test may reach the network or depend on the caller's environment."""
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
    monkeypatch.delenv("VAE_TUTORIAL_OFFLINE", raising=False)

    def no_network():
        raise RuntimeError("network disabled in tests")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", no_network)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)
    monkeypatch.setattr(data, "_can_reach", lambda host: True)  # then the patched download runs


# ----------------------------------------------------------------------------------------------
# Helpers: IDX files written by hand, independently of the module under test


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True, magic: int | None = None):
    raw = idx_bytes(array, magic)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def small_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_dataset(folder: Path, arrays, *, gz: bool = True) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {k: write_idx(folder / STEMS[k], a, gz=gz) for k, a in arrays.items()}


def index_images(n: int) -> np.ndarray:
    """Distinct images that carry their own index in two pixels (readable after /255)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) // 256
    images[:, 0, 1] = np.arange(n) % 256
    return images


def decode_indices(batches) -> np.ndarray:
    out = []
    for b in batches:
        b = np.round(b.numpy() * 255).astype(np.int64)
        out.append(b[:, 0, 0] * 256 + b[:, 0, 1])
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# IDX parsing and loading from a directory


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_matches_hand_written_files(tmp_path, gz):
    arrays = small_arrays(7, 3)
    for key, array in arrays.items():
        path = write_idx(tmp_path / STEMS[key], array, gz=gz)
        got = read_idx(path)
        assert got.dtype == np.uint8 and got.shape == array.shape
        np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("gz", [True, False])
def test_load_dataset_from_folder_and_dataset_subfolder(tmp_path, gz):
    arrays = small_arrays()
    write_dataset(tmp_path / "mnist", arrays, gz=gz)
    for folder in (tmp_path, tmp_path / "mnist"):  # the parent and the dataset folder both work
        d = load_dataset("mnist", data_dir=folder)
        assert isinstance(d, ImageData) and d.name == "mnist"
        for key, array in arrays.items():
            np.testing.assert_array_equal(getattr(d, key), array)
        assert str(tmp_path / "mnist") in d.source
        assert d.class_names == tuple("0123456789")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    arrays = small_arrays()
    write_dataset(tmp_path / "fashion_mnist", arrays)
    monkeypatch.setenv("VAE_TUTORIAL_DATA_DIR", str(tmp_path))
    d = load_dataset("fashion_mnist")
    np.testing.assert_array_equal(d.train_images, arrays["train_images"])
    assert d.class_names[0] == "T-shirt/top" and d.class_names[-1] == "Ankle boot"


def test_mnist_npz_in_folder(tmp_path):
    arrays = small_arrays(12, 6)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )
    d = load_dataset("mnist", data_dir=tmp_path)
    for key, array in arrays.items():
        np.testing.assert_array_equal(getattr(d, key), array)
        assert getattr(d, key).dtype == np.uint8
    assert "mnist.npz" in d.source


def test_real_fashion_mnist_from_shared_data(shared_data):
    for name, folder in [
        ("fashion_mnist", shared_data),
        ("fashion-mnist", shared_data / "fashion-mnist"),
    ]:
        d = load_dataset(name, data_dir=folder)
        assert d.name == "fashion_mnist"
        assert d.train_images.shape == (60000, 28, 28) and d.test_images.shape == (10000, 28, 28)
        assert d.train_labels.shape == (60000,) and d.test_labels.shape == (10000,)
        assert d.train_images.dtype == np.uint8 and d.train_labels.dtype == np.uint8
        assert d.train_labels.min() == 0 and d.train_labels.max() == 9
        # A known fact of Fashion-MNIST: perfectly balanced classes.
        np.testing.assert_array_equal(np.bincount(d.train_labels), [6000] * 10)
        np.testing.assert_array_equal(np.bincount(d.test_labels), [1000] * 10)


def test_subset_and_repr():
    d = ImageData("mnist", "test", *small_arrays(20, 10).values())
    s = d.subset(5, 3)
    assert s.train_images.shape == (5, 28, 28) and s.test_labels.shape == (3,)
    np.testing.assert_array_equal(s.train_images, d.train_images[:5])
    assert "first 5 train" in s.source and "(5, 28, 28)" in repr(s)
    assert d.subset().train_images.shape == (20, 28, 28)
    with pytest.raises(ValueError, match="only 20 images"):
        d.subset(21, 3)


# ----------------------------------------------------------------------------------------------
# Errors: one clear message naming the file / problem and the fix


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="'mnist', 'fashion_mnist'"):
        load_dataset("cifar10")


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"is not a directory.*Fix: point it at a folder"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_empty_directory_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[\.gz\].*mnist\.npz.*Fix"):
        load_dataset("mnist", data_dir=tmp_path)


@pytest.fixture
def mnist_test_split_only(tmp_path) -> Path:
    """A folder as MNIST's test files alone leave it: mnist/ without the train split."""
    (tmp_path / "mnist").mkdir()
    for name in OFFICIAL_SHA256:
        shutil.copy(SAMPLE_DIR / name, tmp_path / "mnist" / name)
    return tmp_path


def test_mnist_without_train_split_is_an_error(mnist_test_split_only):
    # No silent fallback to the sample when a folder is given.
    with pytest.raises(DataError, match=r"missing train-images-idx3-ubyte.*download.*sample"):
        load_dataset("mnist", data_dir=mnist_test_split_only)


def test_mnist_without_train_split_via_env(mnist_test_split_only, monkeypatch):
    monkeypatch.setenv("VAE_TUTORIAL_DATA_DIR", str(mnist_test_split_only))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*unset VAE_TUTORIAL_DATA_DIR"):
        load_dataset("mnist")


def test_truncated_file(tmp_path):
    paths = write_dataset(tmp_path, small_arrays())
    raw = gzip.decompress(paths["train_images"].read_bytes())
    paths["train_images"].write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is truncated.*re-download"):
        load_dataset("mnist", data_dir=tmp_path)


def test_wrong_magic(tmp_path):
    arrays = small_arrays()
    write_dataset(tmp_path, arrays)
    write_idx(tmp_path / STEMS["test_labels"], arrays["test_labels"], magic=0x0D01)
    with pytest.raises(
        DataError, match=r"t10k-labels-idx1-ubyte\.gz is not an IDX file.*0x00000801"
    ):
        load_dataset("mnist", data_dir=tmp_path)


def test_corrupt_gzip(tmp_path):
    paths = write_dataset(tmp_path, small_arrays())
    blob = bytearray(paths["test_images"].read_bytes())
    blob[-8] ^= 0xFF  # damage the CRC-32 in the gzip trailer
    paths["test_images"].write_bytes(bytes(blob))
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte\.gz is a corrupt or incomplete gzip.*re-download"
    ):
        load_dataset("mnist", data_dir=tmp_path)
    paths["test_images"].write_bytes(bytes(blob[: len(blob) // 2]))  # cut mid-stream
    with pytest.raises(DataError, match=r"corrupt or incomplete gzip.*re-download"):
        load_dataset("mnist", data_dir=tmp_path)
    paths["test_images"].write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match=r"corrupt or incomplete gzip.*re-download"):
        load_dataset("mnist", data_dir=tmp_path)


def test_implausible_header(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", 0x0803, 2**31, 2**31, 28) + b"\0" * 100)
    with pytest.raises(DataError, match=r"is corrupt: its header claims shape"):
        read_idx(path)


def test_plain_file_that_is_gzipped(tmp_path):
    path = tmp_path / STEMS["train_labels"]
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(DataError, match="rename it to add .gz"):
        read_idx(path)


def test_image_label_count_mismatch(tmp_path):
    arrays = small_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    write_dataset(tmp_path, arrays)
    with pytest.raises(DataError, match=r"20 train images but 19 train labels.*re-download both"):
        load_dataset("mnist", data_dir=tmp_path)


def test_fashion_download_failure_falls_back_to_its_sample(capsys):
    d = load_dataset("fashion_mnist")  # the autouse fixture makes the download raise
    assert d.name == "fashion_mnist" and len(d.train_images) == 8000
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("NOTICE: using the bundled Fashion-MNIST sample")
    assert "download failed (RuntimeError: network disabled in tests)" in line
    assert "VAE_TUTORIAL_DATA_DIR" in line


# ----------------------------------------------------------------------------------------------
# The bundled sample and the download path


def test_bundled_sample_files_are_the_official_ones():
    for fname, digest in OFFICIAL_SHA256.items():
        assert hashlib.sha256((SAMPLE_DIR / fname).read_bytes()).hexdigest() == digest
        assert data._SAMPLE_SHA256[fname] == digest
    total = sum((SAMPLE_DIR / f).stat().st_size for f in OFFICIAL_SHA256)
    assert total < 2 * 2**20
    assert (SAMPLE_DIR / "README.md").is_file()


def test_bundled_sample_offline(capsys):
    d = load_dataset("mnist", download=False)
    assert d.train_images.shape == (8000, 28, 28) and d.test_images.shape == (2000, 28, 28)
    assert d.train_labels.shape == (8000,) and d.test_labels.shape == (2000,)
    assert set(np.unique(d.train_labels)) == set(range(10))
    assert "test split" in d.source and "8,000" in d.source
    err = capsys.readouterr().out.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("NOTICE:")
    assert "8,000 train / 2,000 test" in err[0] and "VAE_TUTORIAL_DATA_DIR" in err[0]


def test_bundled_sample_split_is_stratified_random_and_fixed():
    images = read_idx(SAMPLE_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SAMPLE_DIR / "t10k-labels-idx1-ubyte.gz")
    train, test = data.sample_split(labels)
    assert (len(train), len(test)) == (8000, 2000)
    assert len(np.union1d(train, test)) == 10000  # a partition of the 10,000 images
    np.testing.assert_array_equal(data.sample_split(labels)[1], test)  # deterministic

    def gaps(train_idx, test_idx):
        intensity = abs(images[train_idx].mean() - images[test_idx].mean()) / 255
        share = np.abs(
            np.bincount(labels[train_idx], minlength=10) / len(train_idx)
            - np.bincount(labels[test_idx], minlength=10) / len(test_idx)
        ).max()
        return intensity, share

    # The official split's halves come from different writers: the old first-8,000 /
    # last-2,000 split fails the tolerances that the stratified random split meets.
    old_intensity, old_share = gaps(np.arange(8000), np.arange(8000, 10000))
    intensity, share = gaps(train, test)
    assert old_intensity > 0.008 and intensity < 0.004
    assert old_share > 0.005 and share < 0.002
    d = load_dataset("mnist", download=False)
    np.testing.assert_array_equal(d.test_images, images[test])
    np.testing.assert_array_equal(d.train_labels, labels[train])


# The official Fashion-MNIST test split (the shared data's digests; Debian's gzip files).
FASHION_SHA256 = {
    "fashion-mnist-t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "fashion-mnist-t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}
# sha256 of the sorted held-out positions as little-endian int64: pins each sample's split.
HELD_OUT_DIGEST = {
    "mnist": "ece7699d72089ff1483464c0c88fa22426b63084e68633730b3e94de88ac9df8",
    "fashion_mnist": "788214c8b278abf5ed408e57359a7df6805a2442924004fc868d08cd46115c96",
}


def read_idx_by_hand(path: Path) -> np.ndarray:
    """An IDX file read with gzip and struct alone (independent of vae_tutorial.idx)."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def test_bundled_fashion_sample_files_are_the_official_ones():
    for fname, digest in FASHION_SHA256.items():
        assert hashlib.sha256((SAMPLE_DIR / fname).read_bytes()).hexdigest() == digest
        assert data._SAMPLE_SHA256[fname] == digest
    total = sum((SAMPLE_DIR / f).stat().st_size for f in FASHION_SHA256)
    assert total < 5 * 2**20  # the package stays small
    assert "Zalando" in (SAMPLE_DIR / "README.md").read_text()


def test_bundled_fashion_sample_split_is_stratified_and_fixed():
    d = load_dataset("fashion_mnist", download=False)
    assert d.name == "fashion_mnist" and d.class_names[0] == "T-shirt/top"
    # Fashion-MNIST's test split has exactly 1,000 images per class: 800 / 200 after the split.
    np.testing.assert_array_equal(np.bincount(d.train_labels, minlength=10), [800] * 10)
    np.testing.assert_array_equal(np.bincount(d.test_labels, minlength=10), [200] * 10)
    # Shuffled: not grouped by class (the first 50 held-out images hold most of the classes).
    assert len(np.unique(d.test_labels[:50])) >= 8
    again = load_dataset("fashion_mnist", download=False)
    np.testing.assert_array_equal(again.test_images, d.test_images)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_sample_split_is_pinned(name):
    labels = read_idx_by_hand(SAMPLE_DIR / data._DATASETS[name].sample_files[1])
    train, test = data.sample_split(labels)
    assert len(np.union1d(train, test)) == len(labels) == 10_000  # a partition
    digest = hashlib.sha256(np.sort(test).astype("<i8").tobytes()).hexdigest()
    assert digest == HELD_OUT_DIGEST[name], "the sample's split changed: held-out scores move"


def test_bundled_fashion_sample_equals_the_official_files(shared_data):
    folder = shared_data / "fashion-mnist"
    images = read_idx_by_hand(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_by_hand(folder / "t10k-labels-idx1-ubyte.gz")
    d = load_dataset("fashion_mnist", download=False)
    train, test = data.sample_split(labels)
    np.testing.assert_array_equal(d.train_images, images[train])
    np.testing.assert_array_equal(d.train_labels, labels[train])
    np.testing.assert_array_equal(d.test_images, images[test])
    np.testing.assert_array_equal(d.test_labels, labels[test])
    # and the sample is the test split, not images of the official training split
    full = load_dataset("fashion_mnist", data_dir=shared_data)
    np.testing.assert_array_equal(full.test_images, images)


def test_fashion_sample_checksum_mismatch(monkeypatch):
    name = "fashion-mnist-t10k-labels-idx1-ubyte.gz"
    monkeypatch.setitem(data._SAMPLE_SHA256, name, "0" * 64)
    with pytest.raises(
        DataError, match=r"Fashion-MNIST sample file .*labels.* has sha256.*reinstall"
    ):
        load_dataset("fashion_mnist", download=False)


def test_offline_download_failure_is_one_clean_notice_line(monkeypatch, capsys):
    def must_not_run():
        raise AssertionError("download attempted although the host is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", must_not_run)
    monkeypatch.setattr(data, "_can_reach", lambda host: False)  # as with no network
    load_dataset("mnist")
    out, err = capsys.readouterr()
    assert err == ""  # no "Downloading data from ..." line
    [line] = out.strip().splitlines()
    assert line.startswith("NOTICE: ") and "cannot be reached" in line
    assert "Name or service" not in line and "Traceback" not in line


def test_download_error_text_is_shortened(monkeypatch, capsys):
    def keras_like_failure():
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/x/mnist.npz: None -- "
            "[Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(keras.datasets.mnist, "load_data", keras_like_failure)
    load_dataset("mnist")
    [line] = capsys.readouterr().out.strip().splitlines()
    assert "the download failed (Exception: [Errno -3] Temporary failure" in line
    assert "URL fetch failure" not in line and "storage.googleapis.com/x" not in line


@pytest.mark.parametrize(
    ("name", "title"), [("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST")]
)
def test_offline_env_skips_download(name, title, monkeypatch, capsys):
    def must_not_run():
        raise AssertionError("download attempted in offline mode")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", must_not_run)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", must_not_run)
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    d = load_dataset(name)
    assert d.train_images.shape == (8000, 28, 28) and d.test_images.shape == (2000, 28, 28)
    assert d.train_images.dtype == np.uint8 and d.test_labels.dtype == np.uint8
    assert f"official {title} test split" in d.source
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith(f"NOTICE: using the bundled {title} sample")
    assert "VAE_TUTORIAL_OFFLINE" in line


def test_sample_checksum_mismatch(monkeypatch):
    monkeypatch.setitem(data._SAMPLE_SHA256, "t10k-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz has sha256 .*reinstall"):
        load_dataset("mnist", download=False)


def test_download_is_used_when_online(monkeypatch, capsys):
    arrays = small_arrays(30, 10)
    calls = []

    def fake_load_data():
        calls.append(1)
        return (arrays["train_images"], arrays["train_labels"]), (
            arrays["test_images"],
            arrays["test_labels"],
        )

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load_data)
    d = load_dataset("mnist")
    assert calls == [1]
    np.testing.assert_array_equal(d.train_images, arrays["train_images"])
    assert "keras.datasets.mnist" in d.source
    assert "NOTICE" not in capsys.readouterr().out
    # download=False wins over a working network.
    assert len(load_dataset("mnist", download=False).train_images) == 8000
    assert calls == [1]


def test_download_failure_falls_back_to_sample(capsys):
    d = load_dataset("mnist")  # the autouse fixture makes the download raise
    assert len(d.train_images) == 8000 and len(d.test_images) == 2000
    err = capsys.readouterr().out.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("NOTICE:")
    assert "download failed (RuntimeError: network disabled in tests)" in err[0]


# ----------------------------------------------------------------------------------------------
# Binarization


def test_none_is_exactly_grey_levels():
    images = index_images(50)
    got = np.concatenate([b.numpy() for b in make_batches(images, binarize="none", shuffle=False)])
    np.testing.assert_array_equal(got, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(binarize_images(images, "none").numpy(), got)


def test_dynamic_differs_by_epoch_and_reproduces():
    images = index_images(64)

    def draw(seed, epoch):
        return np.concatenate(
            [
                b.numpy()
                for b in make_batches(
                    images, binarize="dynamic", shuffle=False, seed=seed, epoch=epoch
                )
            ]
        )

    e0, e0_again, e1, other_seed = draw(0, 0), draw(0, 0), draw(0, 1), draw(1, 0)
    assert set(np.unique(e0)) <= {0.0, 1.0}
    np.testing.assert_array_equal(e0, e0_again)
    assert (e0 != e1).mean() > 0.05 and (e0 != other_seed).mean() > 0.05
    again = binarize_images(images, "dynamic", seed=0, epoch=1).numpy()
    np.testing.assert_array_equal(again, binarize_images(images, "dynamic", seed=0, epoch=1))
    assert (again != binarize_images(images, "dynamic", seed=0, epoch=2).numpy()).mean() > 0.05


def test_static_is_fixed_across_epochs_and_order():
    images = index_images(300)

    def draw(epoch, shuffle):
        kw = dict(batch_size=64, shuffle=shuffle, seed=5, epoch=epoch)
        batches = [b.numpy() for b in make_batches(images, binarize="static", **kw)]
        order = decode_indices(make_batches(images, binarize="none", **kw))
        out = np.empty((len(images), 28, 28), np.float32)
        out[order] = np.concatenate(batches)
        return out

    e0, e1, shuffled = draw(0, False), draw(1, False), draw(3, True)
    assert set(np.unique(e0)) <= {0.0, 1.0}
    np.testing.assert_array_equal(e0, e1)
    np.testing.assert_array_equal(e0, shuffled)
    np.testing.assert_array_equal(binarize_images(images, "static", seed=5).numpy(), e0)
    assert (e0 != binarize_images(images, "dynamic", seed=5).numpy()).mean() > 0.05


def test_dynamic_mean_matches_intensities():
    # One image holding every grey level, drawn in many epochs: each pixel's mean over K
    # Bernoulli draws has standard error sqrt(p (1 - p) / K); allow 5 of them.
    image = np.arange(784, dtype=np.int64).reshape(1, 28, 28) % 256
    image = image.astype(np.uint8)
    k = 400
    draws = np.stack(
        [binarize_images(image, "dynamic", seed=11, epoch=e).numpy()[0] for e in range(k)]
    )
    p = image[0].astype(np.float64) / 255
    mean = draws.mean(axis=0)
    se = np.sqrt(p * (1 - p) / k)
    assert np.all(np.abs(mean - p) <= 5 * se + 1e-12)  # p = 0 and p = 1 are exact
    # The average over all 784 pixels: 784 * k draws, a much tighter check.
    assert abs(mean.mean() - p.mean()) <= 5 * np.sqrt((p * (1 - p)).sum()) / (784 * np.sqrt(k))


# ----------------------------------------------------------------------------------------------
# Batches and shuffling


def test_shuffle_is_a_permutation_per_epoch_and_reproducible():
    images = index_images(300)

    def order(seed, epoch, shuffle=True):
        return decode_indices(
            make_batches(
                images, batch_size=64, binarize="none", shuffle=shuffle, seed=seed, epoch=epoch
            )
        )

    o00, o00_again, o01, o10 = order(0, 0), order(0, 0), order(0, 1), order(1, 0)
    for o in (o00, o01, o10):
        np.testing.assert_array_equal(np.sort(o), np.arange(300))
    np.testing.assert_array_equal(o00, o00_again)
    assert not np.array_equal(o00, o01) and not np.array_equal(o00, o10)
    np.testing.assert_array_equal(order(0, 0, shuffle=False), np.arange(300))
    # The documented order, computed independently, and blind to TensorFlow's global seed.
    np.testing.assert_array_equal(o01, np.random.default_rng([0, 1]).permutation(300))
    tf.random.set_seed(999)
    np.testing.assert_array_equal(order(0, 1), o01)
    # The same dataset object iterated twice gives the same epoch.
    ds = make_batches(images, batch_size=64, binarize="none", seed=0, epoch=0)
    np.testing.assert_array_equal(decode_indices(ds), decode_indices(ds))


EPOCH_DIGEST = """
import hashlib, sys
import numpy as np
from vae_tutorial.data import make_batches
images = np.random.default_rng(1).integers(0, 256, (300, 28, 28), dtype=np.uint8)
for binarize in ("none", "dynamic", "static"):
    h = hashlib.sha256()
    for b in make_batches(images, batch_size=64, binarize=binarize, seed=3, epoch=2):
        h.update(b.numpy().tobytes())
    print(h.hexdigest())
"""


def test_epoch_reproducible_in_a_new_process():
    # Order and draws of epoch 2 in a fresh interpreter (no global TF seed) equal this
    # process's (where conftest sets one): a restarted run sees exactly the same epoch.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    fresh = subprocess.run(
        [sys.executable, "-c", EPOCH_DIGEST],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
        check=True,
    ).stdout.split()
    here = []
    exec(EPOCH_DIGEST, {"print": here.append})
    assert fresh == here and len(here) == 3


def test_batch_shapes_dtype_and_remainder():
    images = index_images(300)
    shapes = [tuple(b.shape) for b in make_batches(images, batch_size=128)]
    assert shapes == [(128, 28, 28), (128, 28, 28), (44, 28, 28)]
    assert len(shapes) == num_batches(300, 128)
    ds = make_batches(images, batch_size=128, drop_remainder=True)
    shapes = [tuple(b.shape) for b in ds]
    assert shapes == [(128, 28, 28)] * 2 == [(128, 28, 28)] * num_batches(300, 128, True)
    assert ds.element_spec.dtype.name == "float32"
    for b in ds:
        assert b.dtype.name == "float32"
        assert float(b.numpy().min()) >= 0.0 and float(b.numpy().max()) <= 1.0


def test_bad_inputs_have_clear_messages():
    images = index_images(10)
    with pytest.raises(ValueError, match=r"uint8.*not a float copy"):
        make_batches(images.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\).*reshape\(-1, 28, 28\)"):
        make_batches(images.reshape(10, 784))
    with pytest.raises(ValueError, match=r"'none', 'static', 'dynamic'"):
        make_batches(images, binarize="stochastic")
    with pytest.raises(ValueError, match=r"'none', 'static', 'dynamic'"):
        binarize_images(images, "yes")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        make_batches(images, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        make_batches(images, batch_size=12.5)
    with pytest.raises(TypeError, match="pass data.train_images"):
        make_batches(ImageData("mnist", "x", images, images[:, 0, 0], images, images[:, 0, 0]))


@pytest.mark.parametrize("image_shape", [(28, 28), (28, 28, 1), (3, 3)])
@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_resident_images_gather_the_chosen_images_byte_for_byte(image_shape, jit_compile):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, *image_shape), dtype=np.uint8)
    resident = resident_images(images, "none", seed=0)
    assert resident.dtype == (tf.int32 if image_shape[-1] % 4 == 0 else tf.uint8)
    indices = tf.constant(rng.integers(0, 50, size=17), tf.int64)
    gather = gather_images
    if jit_compile is not None:  # in a graph, and compiled by XLA
        gather = tf.function(gather_images, jit_compile=jit_compile)
    got = gather(resident, indices).numpy()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images[indices.numpy()])


def test_resident_images_share_the_arrays_memory_and_take_any_array():
    images = aligned(np.arange(4 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(4, 28, 28))
    resident = resident_images(images, "none", seed=0)
    images[2, 5, 9] = 7  # seen through the tensor: no copy was made
    np.testing.assert_array_equal(gather_images(resident, tf.constant([2])).numpy()[0], images[2])
    every_other = images[::2]  # not contiguous: kept as uint8 (a copy)
    got = gather_images(resident_images(every_other, "none", seed=0), tf.constant([1, 0]))
    np.testing.assert_array_equal(got.numpy(), every_other[[1, 0]])
