"""fit(): history, resume (clean exit and SIGKILL), refusals, the NaN guard, TensorBoard,
reproducibility. Tiny data and models: the whole file should run in about a minute."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import EPOCH_KEYS, KILL_TRAIN, TEST, TRAIN, small_vae

from vae_tutorial import (
    VAE,
    ConvVAE,
    NonFiniteLossError,
    TrainingConfig,
    fit,
    kl_warmup_beta,
    load_dataset,
)
from vae_tutorial.batching import make_batches
from vae_tutorial.compiled import tracing_count

REPO = Path(__file__).resolve().parents[1]


SETTINGS = {f.name for f in dataclasses.fields(TrainingConfig)}


def run(model=None, **kwargs):
    """fit on the small sample: TrainingConfig's settings among kwargs go into the config."""
    settings = {"epochs": 2, "batch_size": 64}
    settings.update({k: kwargs.pop(k) for k in list(kwargs) if k in SETTINGS})
    kwargs.setdefault("progress", False)
    model = small_vae() if model is None else model
    return fit(model, TRAIN, TEST, TrainingConfig(**settings), **kwargs)


def losses(history):
    return [(h["train_loss"], h["reconstruction"], h["kl"], h["test_elbo"]) for h in history]


@pytest.mark.slow
def test_history_has_one_record_per_epoch_with_the_documented_fields(capsys, monkeypatch):
    monkeypatch.setattr("vae_tutorial.reporting.live_display", lambda: True)  # as in a terminal
    history = run(epochs=2, progress=True)
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert list(h) == EPOCH_KEYS
        for key in set(EPOCH_KEYS) - {"epoch"}:
            assert isinstance(h[key], float) and math.isfinite(h[key]), key
        assert h["beta"] == 1.0 and h["kl"] >= 0
        assert h["train_loss"] == pytest.approx(h["reconstruction"] + h["kl"], rel=1e-5)
        assert -600 < h["test_elbo"] < 0 and h["images_per_second"] > 0
    out = capsys.readouterr().out
    assert "epoch 2/2: train loss" in out and "test ELBO" in out and "images/s" in out
    assert "loss:" in out and "recon:" in out and "kl:" in out  # the progress bar
    assert (
        fit(small_vae(), TRAIN[:64], config=TrainingConfig(epochs=1), progress=False)[0][
            "test_elbo"
        ]
        is None
    )
    assert capsys.readouterr().out == ""  # progress=False is silent


@pytest.mark.slow
def test_progress_into_a_file_is_one_plain_line_per_epoch(capsys):
    run(epochs=3, progress=True)  # captured output is no terminal: as with nohup or a log
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all("\r" not in line and "\x1b" not in line for line in lines)


@pytest.mark.slow
def test_loss_falls_on_real_mnist():
    data = load_dataset("mnist", download=False).subset(2048, 512)  # the bundled sample
    history = fit(
        small_vae(),
        data.train_images,
        data.test_images,
        config=TrainingConfig(epochs=3, batch_size=64),
        progress=False,
    )
    train = [h["train_loss"] for h in history]
    test = [h["test_elbo"] for h in history]
    assert train[0] > train[1] > train[2] and train[2] < train[0] - 20
    assert test[2] > test[0] + 20


@pytest.mark.slow
def test_resume_after_a_clean_exit_then_more_epochs(tmp_path):
    first = run(epochs=1, checkpoint_dir=tmp_path)
    # A new process would build a new model and optimizer: so do we.
    resumed = run(small_vae(seed=5), epochs=2, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed] == [1, 2] and resumed[0] == first[0]
    again = run(small_vae(seed=6), epochs=2, checkpoint_dir=tmp_path)  # nothing left to do
    assert again == resumed
    longer = run(small_vae(seed=7), epochs=3, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in longer] == [1, 2, 3] and longer[:2] == resumed
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")


@pytest.mark.slow
def test_two_runs_with_one_seed_agree_and_a_split_run_equals_a_straight_one(tmp_path):
    straight = run(epochs=2, seed=3)
    assert losses(run(epochs=2, seed=3)) == losses(straight)
    split = run(epochs=1, seed=3, checkpoint_dir=tmp_path)
    split = run(small_vae(seed=9), epochs=2, seed=3, checkpoint_dir=tmp_path)
    np.testing.assert_allclose(losses(split), losses(straight), rtol=1e-5)
    assert losses(run(epochs=1, seed=4))[0] != losses(straight)[0]


@pytest.mark.slow
def test_checkpoint_saves_and_restores_the_sampling_rng_state(tmp_path):
    model = small_vae()
    before = model.seed_generator.state.numpy().copy()
    run(model, epochs=1, checkpoint_dir=tmp_path)
    after = model.seed_generator.state.numpy()
    assert not np.array_equal(before, after)  # reparameterization drew from it
    restored = small_vae(seed=8)
    assert not np.array_equal(restored.seed_generator.state.numpy(), after)
    run(restored, epochs=1, checkpoint_dir=tmp_path)  # restores, trains nothing
    np.testing.assert_array_equal(restored.seed_generator.state.numpy(), after)
    for a, b in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from helpers import KILL_TRAIN, TEST, small_vae
from vae_tutorial import TrainingConfig, fit
fit(small_vae(), KILL_TRAIN, TEST, TrainingConfig(epochs=50, batch_size=8),
    checkpoint_dir={ckpt!r}, progress=False)
"""


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch(tmp_path):
    ckpt = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(REPO / "tests"), ckpt=str(ckpt)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while tf.train.latest_checkpoint(str(ckpt)) is None:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child saved no checkpoint in 120 s"
            time.sleep(0.05)
        time.sleep(0.2)  # into epoch 2
        assert child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    latest = tf.train.latest_checkpoint(str(ckpt))
    finished = int(latest.rsplit("-", 1)[1])
    assert 1 <= finished <= 3
    saved = json.loads(tf.train.load_variable(latest, "history/.ATTRIBUTES/VARIABLE_VALUE"))
    resumed = fit(
        small_vae(seed=11),
        KILL_TRAIN,
        TEST,
        config=TrainingConfig(epochs=finished + 1, batch_size=8),
        checkpoint_dir=ckpt,
        progress=False,
    )
    assert [h["epoch"] for h in resumed] == list(range(1, finished + 2))
    assert resumed[:finished] == saved  # finished epochs are not repeated


@pytest.fixture(scope="module")
def one_epoch_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("one_epoch")
    run(epochs=1, checkpoint_dir=directory)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize(
    "other", [lambda: VAE(latent_dim=3, intermediate_dim=32), lambda: VAE(2, 16), ConvVAE]
)
def test_a_checkpoint_of_another_model_is_refused(one_epoch_checkpoint, other):
    with pytest.raises(ValueError) as error:
        run(other(), epochs=2, checkpoint_dir=one_epoch_checkpoint)
    message = str(error.value)
    assert str(one_epoch_checkpoint) in message and "different model" in message
    assert "new output directory" in message and "delete" in message


class NaNAfter(VAE):
    """A VAE whose logits turn NaN after ``after`` training calls."""

    def __init__(self, after, **kwargs):
        super().__init__(**kwargs)
        self.after = after
        self.calls = self.add_weight(
            shape=(), initializer="zeros", trainable=False, dtype="int32", name="calls"
        )

    def call(self, x, training=False):
        logits, mu, log_var = super().call(x)
        if training:
            self.calls.assign_add(1)
            logits = tf.where(self.calls > self.after, math.nan, logits)
        return logits, mu, log_var


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    keras.utils.set_random_seed(0)
    model = NaNAfter(after=8 + 3, latent_dim=2, intermediate_dim=32)  # 8 steps per epoch
    with pytest.raises(NonFiniteLossError) as error:
        run(model, epochs=3, checkpoint_dir=tmp_path)
    e = error.value
    assert isinstance(e, FloatingPointError)
    assert (e.epoch, e.step, len(e.history)) == (2, 4, 1)
    assert e.checkpoint == tf.train.latest_checkpoint(str(tmp_path))
    assert e.checkpoint.endswith("ckpt-1")
    message = str(e)
    assert "epoch 2, step 4" in message and e.checkpoint in message
    assert "lower learning rate" in message
    # The model holds the last good (epoch 1) weights again, all finite.
    assert int(model.calls.numpy()) == 8
    saved = NaNAfter(after=0, latent_dim=2, intermediate_dim=32)
    saved(np.zeros((1, 784), "float32"))
    tf.train.Checkpoint(model=saved).restore(e.checkpoint).expect_partial()
    for w, s in zip(model.trainable_weights, saved.trainable_weights, strict=True):
        assert np.isfinite(w.numpy()).all()
        np.testing.assert_array_equal(w.numpy(), s.numpy())


@pytest.mark.slow
def test_non_finite_loss_without_checkpoint_says_none_was_saved():
    with pytest.raises(NonFiniteLossError, match="No checkpoint was saved") as error:
        run(small_vae(), epochs=2, learning_rate=1e6)  # Adam steps of 1e6 blow up at once
    assert error.value.checkpoint is None and "lower learning rate" in str(error.value)


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_scalars_and_images(tmp_path):
    run(epochs=2, tensorboard_dir=tmp_path)
    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert files
    tags, steps = set(), set()
    for event in tf.compat.v1.train.summary_iterator(str(files[0])):
        for value in event.summary.value:
            tags.add(value.tag)
            steps.add(event.step)
    assert {"train_loss", "reconstruction", "kl", "beta", "test_elbo", "images_per_second"} <= tags
    assert "reconstructions" in tags
    assert steps == {1, 2}


@pytest.mark.slow
def test_kl_warmup_schedule():
    assert [kl_warmup_beta(e, 1.0, 4) for e in (1, 2, 3, 4, 5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_warmup_beta(1, 2.0, 0) == 2.0
    history = run(epochs=3, beta=2.0, kl_warmup_epochs=2, jit_compile=False)
    assert [h["beta"] for h in history] == [1.0, 2.0, 2.0]
    for h in history:
        assert h["train_loss"] == pytest.approx(h["reconstruction"] + h["beta"] * h["kl"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"beta": -1.0}, "beta must be a finite number"),
        ({"binarize": "grey"}, "binarize='grey' is not a valid choice"),
        ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0"),
        ({"kl_warmup_epochs": -1}, "kl_warmup_epochs must be an int >= 0"),
        ({"train": TRAIN / 255.0}, "raw uint8 images"),
        ({"train": TRAIN.reshape(-1, 784)}, r"reshape\(-1, 28, 28\)"),
        ({"test": TEST[:, :14]}, "test must be the raw uint8 images"),
        ({"model": VAE(2, 32, input_dim=100)}, "input_dim=784"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_fix(kwargs, match):
    model = kwargs.pop("model", None) or small_vae()
    train, test = kwargs.pop("train", TRAIN), kwargs.pop("test", TEST)
    with pytest.raises(ValueError, match=match):
        fit(model, train, test, TrainingConfig(**kwargs), progress=False)


def test_settings_come_in_one_training_config():
    with pytest.raises(TypeError, match=r"vt.TrainingConfig\(epochs=1\)"):
        fit(small_vae(), TRAIN, TEST, epochs=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'progres'"):
        fit(small_vae(), TRAIN, TEST, progres=False)
    with pytest.raises(TypeError, match="config must be a TrainingConfig, got dict"):
        fit(small_vae(), TRAIN, TEST, {"epochs": 1})


@pytest.mark.slow
def test_two_models_trained_by_fit_in_one_process():
    first = run(VAE(2, 32), epochs=1)
    second = run(VAE(3, 48), epochs=1)
    conv = fit(
        ConvVAE(2), TRAIN[:128], config=TrainingConfig(epochs=1, batch_size=64), progress=False
    )
    again = run(VAE(2, 32), epochs=1)  # the first shape again: its own trace
    for history in (first, second, conv, again):
        assert math.isfinite(history[0]["train_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("binarize", ["none", "static", "dynamic", "dequantize"])
def test_the_fast_runner_trains_as_the_plain_loop(binarize):
    # PlainEpochs (fast=False) runs notebook 05's loop, one compiled step per batch; the fast
    # runner runs many steps per call in a plain graph or in one XLA computation. In a graph:
    # the same batches and the same noise, so the same training up to float rounding. Under
    # XLA the same batches, but TensorFlow's XLA kernel turns the seed into other normal
    # numbers (tests/test_fast_noise.py) and XLA reorders the arithmetic: the losses then
    # agree to the looser tolerance below, not to float rounding.
    plain = run(epochs=2, binarize=binarize, fast=False)
    graph = run(epochs=2, binarize=binarize, jit_compile=False)
    xla = run(epochs=2, binarize=binarize, jit_compile=True)
    np.testing.assert_allclose(losses(graph), losses(plain), rtol=1e-5)
    np.testing.assert_allclose(losses(xla), losses(plain), rtol=2e-3, atol=0.05)
    assert xla[1]["train_loss"] < xla[0]["train_loss"]


class BatchRecorder(VAE):
    """A VAE that sums, in a variable, every training batch weighted by its step number."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="s")
        self.seen = self.add_weight(shape=(784,), initializer="zeros", trainable=False, name="x")

    def call(self, x, training=False):
        if training:
            self.step.assign_add(1.0)
            self.seen.assign_add(tf.reduce_sum(x, axis=0) * self.step)
        return super().call(x)


@pytest.mark.slow
@pytest.mark.parametrize("binarize", ["dynamic", "static"])
@pytest.mark.parametrize("runner", [{"fast": False}, {"jit_compile": False}, {"jit_compile": True}])
def test_fit_trains_on_exactly_make_batches_batches(binarize, runner):
    keras.utils.set_random_seed(0)
    model = BatchRecorder(latent_dim=2, intermediate_dim=16)
    train = TRAIN[:200]  # 3 full batches of 64 and a last one of 8, two epochs
    fit(
        model,
        train,
        config=TrainingConfig(epochs=2, batch_size=64, binarize=binarize, seed=5),
        progress=False,
        **runner,
    )
    expected, step = np.zeros(784), 0
    for epoch in (0, 1):
        for x in make_batches(train, batch_size=64, binarize=binarize, seed=5, epoch=epoch):
            step += 1
            expected += x.numpy().reshape(-1, 784).sum(axis=0) * step
    assert int(model.step.numpy()) == step == 8
    np.testing.assert_array_equal(model.seen.numpy(), expected)  # 0/1 pixels: exact sums


@pytest.mark.slow
def test_training_more_models_and_more_epochs_does_not_retrace():
    first, second = small_vae(), small_vae(seed=1)
    optimizer = keras.optimizers.Adam(1e-3)
    run(first, epochs=1, optimizer=optimizer)
    traces = tracing_count(first)  # the XLA multi-step loop, the held-out ELBO
    assert 1 <= traces <= 4
    run(second, epochs=2)
    run(first, epochs=3, optimizer=optimizer)  # three more epochs, the same optimizer
    assert tracing_count(first) == traces and tracing_count(second) == traces
