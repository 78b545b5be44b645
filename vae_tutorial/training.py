"""The GradientTape training step and fit(), the training loop built on it.

Taught in notebooks 04_gradienttape_training_step and 05_training_on_mnist.
"""

from __future__ import annotations

import functools
import json
import os
import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.compiled import compiled_for
from vae_tutorial.data import (
    _aligned,
    _as_tensor,
    _check_binarize,
    _epoch_order,
    _static_draw,
    _to_float,
    make_batches,
    num_batches,
)
from vae_tutorial.evaluation import evaluate_elbo
from vae_tutorial.losses import negative_elbo_terms
from vae_tutorial.validation import check_finite_number, check_pixels, clear_errors

# Which model each optimizer trains: an optimizer's slots belong to one set of variables.
_OPTIMIZER_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_for_training(model, optimizer, x) -> None:
    """Create the model's and optimizer's variables eagerly, before any ``tf.function``.

    Keras 3 creates optimizer variables lazily, on the first ``apply_gradients``. When that
    first call happens inside a ``tf.function`` traced earlier for another model, TensorFlow
    fails with "'SymbolicTensor' object has no attribute 'handle'". Building both here, in
    eager mode, means a compiled step only ever *uses* variables.
    """
    owner = _OPTIMIZER_OWNERS.get(optimizer)
    if owner is not None and owner() is not model:
        raise ValueError(
            "this optimizer already trains another model; its slot variables belong to that "
            "model. Create one optimizer per model, e.g. keras.optimizers.Adam(1e-3)."
        )
    if not model.built:
        model(x)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    _OPTIMIZER_OWNERS[optimizer] = weakref.ref(model)


def train_step_terms(model, optimizer, x, beta=1.0):
    """One gradient step on the negative ELBO; returns ``(loss, reconstruction, kl)``.

    A plain function, so it can run inside a larger ``tf.function`` (a whole epoch). The
    batch is checked first, so a bad batch never reaches the variables.
    """
    x = check_pixels(x)
    with tf.control_dependencies([x]):  # the step counter too waits for the checks
        return _step_terms(model, optimizer, x, beta)


def _step_terms(model, optimizer, x, beta):
    """:func:`train_step_terms` without the pixel check, for batches valid by construction."""
    with tf.GradientTape() as tape:
        logits, mu, log_var = model(x, training=True)
        loss, reconstruction, kl = negative_elbo_terms(x, logits, mu, log_var, beta)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return loss, reconstruction, kl


def _train_step_loss(model, optimizer, x, beta):
    return train_step_terms(model, optimizer, x, beta)[0]


def train_step(model, optimizer, x, beta=1.0):
    """One compiled GradientTape step, called exactly as the seed calls it.

    ``loss = train_step(model, optimizer, x)`` returns the batch's negative ELBO (a scalar
    tensor, nats per image). It works for any number of models and optimizers in one
    process: each new pair is traced once, after its variables exist.
    Taught in notebook 04_gradienttape_training_step.
    """
    check_finite_number(beta, "beta")
    x = model._as_batch(x)
    with clear_errors():
        prepare_for_training(model, optimizer, x)
        step = compiled_for(model, _train_step_loss)
        return step(optimizer, x, tf.constant(beta, tf.float32))


# ============================================================================================
# fit(): the whole training loop. Taught in notebook 05_training_on_mnist.

_TEST_EPOCH = 2**30  # make_batches' largest epoch index: the held-out set's fixed binarization
_FIRST_STEPS_PER_CALL = 32
_SECONDS_PER_CALL = 0.25  # aim: the progress bar moves a few times per second
_MAX_STEPS_PER_CALL = 2000
_TENSORBOARD_IMAGES = 8


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; :func:`fit` stopped without saving that state.

    Attributes: ``epoch`` (1-based), ``step`` (1-based, within the epoch), ``checkpoint`` (path
    of the last good checkpoint or None) and ``history`` (the finished epochs).
    Taught in notebook 05_training_on_mnist.
    """

    def __init__(self, message, *, epoch, step, checkpoint, history):
        super().__init__(message)
        self.epoch, self.step, self.checkpoint, self.history = epoch, step, checkpoint, history


def kl_warmup_beta(epoch: int, beta: float = 1.0, kl_warmup_epochs: int = 0) -> float:
    """The KL weight of 1-based ``epoch``: ``beta * min(1, epoch / kl_warmup_epochs)``.

    With ``kl_warmup_epochs=0`` it is ``beta`` from the start. Taught in notebook
    05_training_on_mnist.
    """
    if kl_warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, epoch / kl_warmup_epochs)


def _train_chunk_body(
    model,
    optimizer,
    images,
    order,
    first_batch,
    steps,
    beta,
    epoch,
    batch_size,
    size,
    binarize,
    seed,
    jit_step,
):
    """``steps`` steps on batches ``first_batch, first_batch + 1, ...`` of one epoch.

    ``images``: the resident uint8 training images (``data._as_tensor``); ``order``: the
    epoch's permutation (``data._epoch_order``). Batch b is ``images[order[b*B:b*B + size]]``
    converted by ``data._to_float`` as ``make_batches(..., seed=seed, epoch=epoch)`` converts
    it (in a graph x / 255 may become x * (1 / 255): grey levels can differ in the last bit).
    ``size`` is a Python int (``batch_size``, or the epoch's last, smaller batch), so with
    ``jit_compile`` one XLA computation runs the whole loop. uint8 / 255 is finite and in
    [0, 1]: these batches need no pixel check. ``jit_step``: compile only each step with XLA
    (not the loop: XLA's random numbers for "dynamic" binarization are about three times
    slower than TensorFlow's). Returns on-device sums as one tensor
    ``[loss_sum, reconstruction_sum, kl_sum, images, steps, first_bad_step]``: per-image sums
    (batch mean x batch size) and, when a loss is NaN/Inf, the 1-based step in this call
    where it happened (the loop stops there), else 0.
    """
    # make_batches' counter is (epoch << 32) + batch number; _to_float gets epoch 0 and the
    # whole counter as its batch number, so the epoch can be a tensor (one trace for all).
    if jit_step:
        step = compiled_for(model, _step_terms, jit_compile=True)
    else:
        step = functools.partial(_step_terms, model)
    counter_base = tf.bitwise.left_shift(epoch, tf.constant(32, tf.int64))
    sums = tf.zeros([3], tf.float32)
    steps_done = tf.constant(0, tf.int64)
    bad_step = tf.constant(0, tf.int64)
    while steps_done < steps:  # not tf.range: XLA would compile once per value of steps
        batch_number = first_batch + steps_done
        # A gather, not tf.slice: XLA would compile once per value of a slice's start.
        indices = tf.gather(order, batch_number * batch_size + tf.range(size, dtype=tf.int64))
        x = _to_float(tf.gather(images, indices), binarize, seed, 0, counter_base + batch_number)
        x = tf.reshape(x, [size, *model.event_shape])
        loss, reconstruction, kl = step(optimizer, x, beta)
        sums += tf.stack([loss, reconstruction, kl]) * size
        steps_done += 1
        if not tf.math.is_finite(loss):
            bad_step = steps_done
            break
    counts = tf.cast(tf.stack([steps_done * size, steps_done, bad_step]), tf.float32)
    return tf.concat([sums, counts], axis=0)


def _check_images_arg(images, name: str, *, required: bool) -> np.ndarray | None:
    if images is None and not required:
        return None
    if isinstance(images, tf.data.Dataset) or images is None:
        raise ValueError(
            f"{name} must be a uint8 array of shape (N, 28, 28), e.g. data.{name} from "
            f"vae_tutorial.load_dataset, got {type(images).__name__}; fit builds the batches "
            "itself (make_batches)."
        )
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (28, 28) or not len(array):
        raise ValueError(
            f"{name} must be the raw uint8 images (N, 28, 28) with N >= 1, as in data.{name} "
            f"from vae_tutorial.load_dataset; got dtype {array.dtype} and shape {array.shape}. "
            "Floats in [0, 1] convert back with np.round(x * 255).astype(np.uint8); flat "
            "images reshape with images.reshape(-1, 28, 28)."
        )
    return array


def _check_int_arg(value, name: str, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}; {fix}")
    return int(value)


def _check_fit_args(
    model, epochs, batch_size, beta, kl_warmup_epochs, binarize, seed, learning_rate, optimizer
):
    shape = getattr(model, "event_shape", None)
    if shape is None or int(np.prod(shape)) != 784:
        raise ValueError(
            f"fit trains a vae_tutorial VAE or ConvVAE on 28x28 images; got {type(model).__name__}"
            f" with event_shape {shape}. Build the model with input_dim=784 (the default)."
        )
    epochs = _check_int_arg(epochs, "epochs", 1, "pass the total number of epochs, e.g. 10.")
    batch_size = _check_int_arg(batch_size, "batch_size", 1, "e.g. batch_size=128.")
    kl_warmup_epochs = _check_int_arg(
        kl_warmup_epochs, "kl_warmup_epochs", 0, "use 0 for no warm-up, e.g. 10 for a ramp."
    )
    seed = _check_int_arg(seed, "seed", 0, "any non-negative int, e.g. seed=0.")
    try:
        beta = check_finite_number(beta, "beta")
        if optimizer is None:
            learning_rate = check_finite_number(learning_rate, "learning_rate")
            if learning_rate <= 0:
                raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{error} Use beta >= 0 (1.0 is the ELBO) and a positive learning rate (e.g. 1e-3)."
        ) from None
    _check_binarize(binarize)
    return epochs, batch_size, beta, kl_warmup_epochs, seed


def _model_spec(model) -> str:
    """What a checkpoint must agree on with the model: class, latent size, variable shapes."""
    return json.dumps(
        {
            "model": type(model).__name__,
            "latent_dim": getattr(model, "latent_dim", None),
            "event_shape": list(model.event_shape),
            "variables": [list(v.shape) for v in model.variables],
        }
    )


def _spec_difference(saved: dict, current: dict) -> str:
    for key in ("model", "latent_dim", "event_shape"):
        if saved.get(key) != current.get(key):
            return f"{key} {saved.get(key)} in the checkpoint, {current.get(key)} in this model"
    return (
        f"variable shapes differ: {saved.get('variables')} in the checkpoint, "
        f"{current.get('variables')} in this model (e.g. another intermediate_dim)"
    )


def _new_run_fix(checkpoint_dir) -> str:
    return (
        f"To train this model from scratch, use a new output directory (a new --out / "
        f"checkpoint_dir) or delete {checkpoint_dir}."
    )


def _restore(checkpoint, path, spec, checkpoint_dir):
    """Restore a fit() checkpoint after checking that it was written for this model."""
    try:
        saved = json.loads(tf.train.load_variable(path, "spec/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.NotFoundError, ValueError, KeyError):
        raise ValueError(
            f"{checkpoint_dir} holds a checkpoint ({path}) that vae_tutorial.fit did not write. "
            + _new_run_fix(checkpoint_dir)
        ) from None
    if saved != json.loads(spec):
        raise ValueError(
            f"the checkpoint in {checkpoint_dir} was written for a different model: "
            f"{_spec_difference(saved, json.loads(spec))}. Resume with the same model "
            "settings, or: " + _new_run_fix(checkpoint_dir)
        )
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise ValueError(
            f"the checkpoint {path} does not match this model and optimizer ({error}); "
            "resume with the same model and optimizer type. " + _new_run_fix(checkpoint_dir)
        ) from None


def _all_finite(variables) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)


def _reconstruction_grid(model, images, binarize, seed) -> tf.Tensor:
    """One image: a row per example, original | reconstruction; shape (1, 28n, 56, 1)."""
    # The same draw as the held-out ELBO's batches (make_batches runs map_fn in a graph).
    x = next(
        iter(
            make_batches(
                images,
                batch_size=len(images),
                binarize=binarize,
                shuffle=False,
                seed=seed,
                epoch=_TEST_EPOCH,
            )
        )
    )
    x = tf.reshape(x, [-1, *model.event_shape])
    originals = tf.reshape(x, [-1, 28, 28])
    recon = tf.reshape(model.reconstruct(x), [-1, 28, 28])
    rows = tf.concat([originals, tf.cast(recon, originals.dtype)], axis=2)  # (n, 28, 56)
    return tf.reshape(rows, [1, -1, 56, 1])


def fit(
    model,
    train_images,
    test_images=None,
    *,
    epochs=10,
    batch_size=128,
    optimizer=None,
    learning_rate=1e-3,
    beta=1.0,
    kl_warmup_epochs=0,
    binarize="dynamic",
    seed=0,
    checkpoint_dir=None,
    tensorboard_dir=None,
    progress=True,
    jit_compile=None,
) -> list[dict]:
    """Train ``model`` on uint8 images (N, 28, 28) for ``epochs`` epochs; return the history.

    Many GradientTape steps run per ``tf.function`` call, on the images kept as one uint8
    tensor: epoch e's batches are ``make_batches(..., seed=seed, epoch=e)``'s, gathered and
    binarized in the graph (grey levels may differ from make_batches' in the last bit). fit
    seeds Python, NumPy and TensorFlow with ``keras.utils.set_random_seed(seed)`` first.
    ``beta`` weights the KL term, ramped up over ``kl_warmup_epochs``. With ``checkpoint_dir``
    a checkpoint (model, optimizer, RNG state, history) is saved after every epoch and a later
    call resumes from it. A NaN/Inf loss raises :class:`NonFiniteLossError`. ``jit_compile``
    (None: XLA for flat MLP models, where it is two to three times as fast on CPU; not for
    convolutional ones, where it is not) runs many steps per XLA launch (each step alone with
    "dynamic" binarization). Returns one dict per epoch: epoch, train_loss, reconstruction,
    kl, beta, test_elbo, seconds, images_per_second.
    Taught in notebook 05_training_on_mnist.
    """
    epochs, batch_size, beta, kl_warmup_epochs, seed = _check_fit_args(
        model,
        epochs,
        batch_size,
        beta,
        kl_warmup_epochs,
        binarize,
        seed,
        learning_rate,
        optimizer,
    )
    train_images = _check_images_arg(train_images, "train_images", required=True)
    test_images = _check_images_arg(test_images, "test_images", required=False)
    if jit_compile is None:
        jit_compile = len(model.event_shape) == 1
    jit_compile = bool(jit_compile)
    keras.utils.set_random_seed(seed)
    if optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate)

    # The training images stay resident as one uint8 tensor; the chunk loop gathers and
    # converts each batch in the graph, as make_batches does.
    resident = train_images
    if binarize == "static":  # as in make_batches: the fixed draw, as uint8 0/1
        resident = _aligned(_static_draw(train_images, seed))
    images_tensor = _as_tensor(resident)
    full_batches, last_size = divmod(len(train_images), batch_size)
    # XLA runs the whole chunk loop (many steps per launch), except with dynamic binarization:
    # XLA's stateless random numbers are slow on CPU, so there only the step is compiled.
    jit_loop = jit_compile and binarize != "dynamic"
    chunk = compiled_for(model, _train_chunk_body, jit_compile=jit_loop)

    def run_chunk(order, first_batch, steps, beta_tensor, epoch, size):
        with clear_errors():
            out = chunk(
                optimizer,
                images_tensor,
                order,
                tf.constant(first_batch, tf.int64),
                tf.constant(steps, tf.int64),
                beta_tensor,
                tf.constant(epoch, tf.int64),
                batch_size,
                size,
                binarize,
                seed,
                jit_compile and not jit_loop,
            )
            return out.numpy().astype(np.float64)

    steps_per_epoch = num_batches(len(train_images), batch_size)
    first = next(
        iter(
            make_batches(
                train_images[:batch_size],
                batch_size=batch_size,
                binarize=binarize,
                shuffle=False,
                seed=seed,
            )
        )
    )
    with clear_errors():
        prepare_for_training(model, optimizer, tf.reshape(first, [-1, *model.event_shape]))

    history: list[dict] = []
    manager = saved_path = None
    if checkpoint_dir is not None:
        checkpoint_dir = os.fspath(checkpoint_dir)
        spec = _model_spec(model)
        epoch_var = tf.Variable(0, dtype=tf.int64)
        history_var = tf.Variable("[]", dtype=tf.string)
        checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=epoch_var,
            history=history_var,
            spec=tf.Variable(spec, dtype=tf.string),
        )
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=3)
        saved_path = manager.latest_checkpoint
        if saved_path:
            _restore(checkpoint, saved_path, spec, checkpoint_dir)
            history = json.loads(history_var.numpy().decode())
            if progress:
                print(f"Resumed from {saved_path}: {len(history)} epoch(s) done.")

    test_batches = None
    if test_images is not None:
        test_batches = make_batches(
            test_images,
            batch_size=max(batch_size, 256),
            binarize=binarize,
            shuffle=False,
            seed=seed,
            epoch=_TEST_EPOCH,
        )
    writer = tf.summary.create_file_writer(os.fspath(tensorboard_dir)) if tensorboard_dir else None
    steps_per_call = _FIRST_STEPS_PER_CALL

    for epoch in range(len(history) + 1, epochs + 1):
        epoch_beta = kl_warmup_beta(epoch, beta, kl_warmup_epochs)
        beta_tensor = tf.constant(epoch_beta, tf.float32)
        bar = (
            keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", "recon", "kl"])
            if progress
            else None
        )
        if progress:
            print(
                f"Epoch {epoch}/{epochs}" + (f" (beta {epoch_beta:g})" if kl_warmup_epochs else "")
            )
        totals = np.zeros(5)
        start = time.perf_counter()
        order = tf.constant(_epoch_order(len(train_images), seed, epoch - 1))
        # Full batches in calls of steps_per_call steps, then the last, smaller batch alone.
        calls_left = [(full_batches, batch_size), (int(last_size > 0), last_size)]
        for steps_left, size in calls_left:
            while steps_left:
                steps = min(steps_per_call, steps_left) if size == batch_size else steps_left
                call_start = time.perf_counter()
                out = run_chunk(order, int(totals[4]), steps, beta_tensor, epoch - 1, size)
                elapsed = time.perf_counter() - call_start
                done_before = int(totals[4])
                totals += out[:5]
                if out[5] or not np.all(np.isfinite(out[:5])):
                    bad = done_before + int(out[5] or out[4])
                    _stop_non_finite(
                        model,
                        manager,
                        epoch,
                        bad,
                        steps_per_epoch,
                        optimizer,
                        history,
                        checkpoint_dir,
                    )
                steps_left -= steps
                if bar is not None and totals[4] < steps_per_epoch:
                    bar.update(int(totals[4]), values=_bar_values(totals))
                if size == batch_size:
                    steps_per_call = int(
                        np.clip(
                            steps * _SECONDS_PER_CALL / max(elapsed, 1e-3),
                            8,
                            _MAX_STEPS_PER_CALL,
                        )
                    )
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.update(int(totals[4]), values=_bar_values(totals), finalize=True)
        images = totals[3]
        record = {
            "epoch": epoch,
            "train_loss": float(totals[0] / images),
            "reconstruction": float(totals[1] / images),
            "kl": float(totals[2] / images),
            "beta": epoch_beta,
            "test_elbo": None,
            "seconds": seconds,
            "images_per_second": float(images / seconds),
        }
        if test_batches is not None:
            record["test_elbo"] = float(evaluate_elbo(model, test_batches)["elbo"])
        if not (np.isfinite(record["test_elbo"] or 0.0) and _all_finite(model.trainable_variables)):
            _stop_non_finite(
                model,
                manager,
                epoch,
                int(totals[4]),
                steps_per_epoch,
                optimizer,
                history,
                checkpoint_dir,
            )
        history.append(record)
        if progress:
            test = "" if record["test_elbo"] is None else f", test ELBO {record['test_elbo']:.2f}"
            print(
                f"epoch {epoch}/{epochs}: train loss {record['train_loss']:.2f}{test}, "
                f"{record['images_per_second']:,.0f} images/s"
            )
        if writer is not None:
            sample = test_images if test_images is not None else train_images
            _write_summaries(writer, model, record, sample[:_TENSORBOARD_IMAGES], binarize, seed)
        if manager is not None:
            epoch_var.assign(epoch)
            history_var.assign(json.dumps(history))
            saved_path = manager.save(checkpoint_number=epoch)
    if writer is not None:
        writer.close()
    return history


def _bar_values(totals):
    n = max(totals[3], 1.0)
    return [("loss", totals[0] / n), ("recon", totals[1] / n), ("kl", totals[2] / n)]


def _write_summaries(writer, model, record, images, binarize, seed):
    with writer.as_default(step=record["epoch"]):
        for key in ("train_loss", "reconstruction", "kl", "beta", "test_elbo", "images_per_second"):
            if record[key] is not None:
                tf.summary.scalar(key, record[key])
        tf.summary.image(
            "reconstructions",
            _reconstruction_grid(model, images, binarize, seed),
            description="Held-out images: original (left) | reconstruction from the posterior "
            "mean (right).",
        )
    writer.flush()


def _stop_non_finite(
    model, manager, epoch, step, steps_per_epoch, optimizer, history, checkpoint_dir
):
    """Restore the last good checkpoint (if any) and raise NonFiniteLossError."""
    path = manager.latest_checkpoint if manager is not None else None
    if path:
        manager.checkpoint.restore(path)
        kept = (
            f"The last good checkpoint, {path} (epoch {len(history)}), is kept and has been "
            "restored into the model."
        )
    elif checkpoint_dir is not None:
        kept = (
            f"No checkpoint was saved yet in {checkpoint_dir} (the first epoch did not "
            "finish), so the model's weights are not usable: build a new model."
        )
    else:
        kept = (
            "No checkpoint was saved (pass checkpoint_dir= to keep one after every epoch), "
            "so the model's weights are not usable: build a new model."
        )
    try:
        lr = float(tf.convert_to_tensor(optimizer.learning_rate))
        lower = f" (e.g. {lr / 10:g} instead of {lr:g})"
    except Exception:  # a schedule: no single value to quote
        lower = ""
    raise NonFiniteLossError(
        f"the training loss became NaN or Inf at epoch {epoch}, step {step} of "
        f"{steps_per_epoch}; training stopped and this state was not saved. {kept} "
        f"Try a lower learning rate{lower}, or a smaller beta.",
        epoch=epoch,
        step=step,
        checkpoint=path,
        history=list(history),
    )
