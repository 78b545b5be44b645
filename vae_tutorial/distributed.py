"""fit's epochs under a ``tf.distribute`` strategy: the original article's step on every replica.

``fit(..., strategy=...)`` runs its epochs here; without a strategy it runs ``fast.FastEpochs``.
One step on a global batch of B images, split over R replicas:

1. ``strategy.experimental_distribute_dataset`` hands each replica its share S_r of the
   batch ``make_batches`` builds, with each image's reparameterization noise eps;
2. each replica computes the per-example negative ELBO l_i of its share and the loss
   sum_{i in S_r} l_i / B (``tf.nn.compute_average_loss``; B is the *global* batch size);
3. Keras' optimizer sums the replicas' gradients (an all-reduce) and applies the update:
   sum_r grad(sum_{i in S_r} l_i / B) = grad((1/B) sum_i l_i), the gradient of the batch
   mean, as without a strategy. A per-replica mean (dividing by |S_r| = B/R) would give R
   times that gradient.

Each image's noise is drawn with its batch, fixed by (seed, epoch, batch) as its
binarization is, so it does not depend on how the batch is split: a step on R replicas
equals the step on one. The epoch's metrics and the held-out ELBO are sums reduced across
replicas (``strategy.reduce``). With ``MultiWorkerMirroredStrategy`` only the chief writes
checkpoints; every other worker saves into a temporary directory removed at once (as in
TensorFlow's multi-worker tutorial) and resumes from the chief's directory, which must be
on storage every worker reads.

Taught in notebook 11_distributed_training.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import HELD_OUT_EPOCH, batch_counter, make_batches, num_batches
from vae_tutorial.checkpoints import RunCheckpoint
from vae_tutorial.epochs import EpochResult, Progress
from vae_tutorial.fast import run_in_calls
from vae_tutorial.losses import negative_elbo_per_example
from vae_tutorial.objectives import is_plain_elbo
from vae_tutorial.step import prepare_for_training
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import TensorLike

_STEPS_PER_CALL = 32  # steps per tf.function call; the progress bar moves between calls
_SUM = tf.distribute.ReduceOp.SUM


def batches_with_noise(
    model: keras.Model,
    images: np.ndarray,
    *,
    batch_size: int,
    binarize: str,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """``make_batches``' batches for ``model``, each with its reparameterization noise.

    Element b is ``(x, eps)``: x of shape (size, *model.event_shape) and eps ~ N(0, I) of
    shape (size, latent_dim), drawn by ``tf.random.stateless_normal`` from (seed, epoch, b)
    alone. Taught in notebook 11_distributed_training.
    """
    batches = make_batches(
        images, batch_size=batch_size, binarize=binarize, shuffle=shuffle, seed=seed, epoch=epoch
    )

    def add_noise(number, x):
        x = tf.reshape(x, [-1, *model.event_shape])
        key = tf.stack([tf.constant(seed, tf.int64), batch_counter(epoch, number)])
        return x, tf.random.stateless_normal([tf.shape(x)[0], model.latent_dim], seed=key)

    options = tf.data.Options()  # the batches are made in memory: no files to shard by
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return batches.enumerate().map(add_noise).with_options(options)


def replica_terms(
    model: keras.Model, x: tf.Tensor, eps: tf.Tensor, beta: TensorLike = 1.0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-example ``(loss, reconstruction, kl)`` of a batch, z = mu + exp(log_var / 2) * eps.

    The model's forward pass with the given noise (``model(x)`` draws its own).
    Taught in notebook 11_distributed_training.
    """
    mu, log_var = model.encoder(x)
    z = mu + tf.exp(0.5 * log_var) * eps
    return negative_elbo_per_example(
        x, model.decoder(z), mu, log_var, beta, likelihood=model.likelihood
    )


def replica_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    x: tf.Tensor,
    eps: tf.Tensor,
    *,
    beta: TensorLike,
    global_batch_size: TensorLike,
) -> tf.Tensor:
    """One replica's share of a step; returns its sums of (loss, reconstruction, kl).

    Its loss is sum_i l_i / global_batch_size over its own examples
    (``tf.nn.compute_average_loss``); the optimizer sums the gradients over the replicas.
    Taught in notebook 11_distributed_training.
    """
    with tf.GradientTape() as tape:
        terms = replica_terms(model, x, eps, beta)
        loss = tf.nn.compute_average_loss(terms[0], global_batch_size=global_batch_size)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return tf.stack([tf.reduce_sum(t) for t in terms])


def _distributed_train_steps(strategy, model, optimizer, iterator, first, steps, beta,
                             batch_size, n):  # fmt: skip
    """``steps`` distributed steps from global batch ``first`` on; returns the summed
    [loss, recon, kl], the steps done and the 1-based NaN/Inf step (0: none)."""

    def body(done, sums, bad):
        x, eps = iterator.get_next()
        size = tf.minimum(tf.constant(batch_size, tf.int64), n - (first + done) * batch_size)
        step = functools.partial(replica_step, model, optimizer, beta=beta, global_batch_size=size)
        step_sums = strategy.reduce(_SUM, strategy.run(step, args=(x, eps)), axis=None)
        done += 1
        bad = tf.where(tf.math.is_finite(step_sums[0]), bad, done)  # the loop stops at NaN/Inf
        return done, sums + step_sums, bad

    zero = tf.constant(0, tf.int64)
    done, sums, bad = tf.while_loop(
        lambda done, sums, bad: (done < steps) & (bad == 0), body, (zero, tf.zeros([3]), zero)
    )
    return sums, done, bad


def _replica_elbo_sums(model, x, eps):
    loss = replica_terms(model, x, eps)[0]
    return tf.stack([-tf.reduce_sum(loss), tf.cast(tf.shape(x)[0], tf.float32)])


def _held_out_sums(strategy, model, iterator, steps):
    """Held-out [ELBO sum, image count] over ``steps`` distributed batches."""

    def body(done, sums):
        x, eps = iterator.get_next()
        per_replica = strategy.run(functools.partial(_replica_elbo_sums, model), args=(x, eps))
        return done + 1, sums + strategy.reduce(_SUM, per_replica, axis=None)

    return tf.while_loop(lambda done, sums: done < steps, body, (0, tf.zeros([2])))[1]


class DistributedEpochs:
    """Runs fit's epochs on ``images`` (uint8, N x 28 x 28) under ``strategy``.

    An epochs runner (``epochs.EpochsRunner``) that owns the strategy: its held-out ELBO is
    summed across replicas, and on a multi-worker cluster only the chief writes files
    (``writes_files``; the others' checkpoints are :class:`WorkerCheckpoint`).
    Taught in notebook 11_distributed_training.
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        images: np.ndarray,
        config: TrainingConfig,
    ) -> None:
        self.strategy, self.model, self.optimizer = strategy, model, optimizer
        self.images, self.config = images, config
        self.steps_per_epoch = num_batches(len(images), config.batch_size)
        self.writes_files = is_chief(strategy)
        # AutoGraph off: the loops are written with tf.while_loop (as in fast.FastEpochs)
        self._train = tf.function(
            functools.partial(_distributed_train_steps, strategy, model, optimizer),
            autograph=False,
        )
        self._held_out = tf.function(
            functools.partial(_held_out_sums, strategy, model), autograph=False
        )

    def _iterator(self, images, batch_size, **kwargs):
        batches = batches_with_noise(
            self.model, images, batch_size=batch_size, binarize=self.config.binarize,
            seed=self.config.seed, **kwargs,
        )  # fmt: skip
        return iter(self.strategy.experimental_distribute_dataset(batches))

    def run(self, epoch: int, beta: float, progress: Progress | None = None) -> EpochResult:
        """Train 1-based ``epoch``; ``progress(steps_done, EpochResult)`` after every call."""
        n, batch_size = len(self.images), self.config.batch_size
        iterator = self._iterator(self.images, batch_size, epoch=epoch - 1)

        def next_call(done):
            steps = min(_STEPS_PER_CALL, self.steps_per_epoch - done)
            sums, steps_run, bad = self._train(
                iterator, tf.constant(done, tf.int64), tf.constant(steps, tf.int64),
                tf.constant(beta, tf.float32), batch_size, n,
            )  # fmt: skip
            steps_run = int(steps_run)
            return sums.numpy(), steps_run, int(bad), min((done + steps_run) * batch_size, n)

        return run_in_calls(next_call, self.steps_per_epoch, progress)

    def held_out_elbo(self, images: np.ndarray, labels: np.ndarray | None = None) -> float:
        """The average ELBO on ``images`` (the held-out epoch's binarization and noise), in
        batches of at least 256 as on one device; ``labels``: None (no conditional model)."""
        batch_size = max(self.config.batch_size, 256)
        iterator = self._iterator(images, batch_size, epoch=HELD_OUT_EPOCH, shuffle=False)
        total, count = self._held_out(iterator, num_batches(len(images), batch_size)).numpy()
        return float(total / count)

    def checkpoint(self, directory: str | os.PathLike) -> RunCheckpoint:
        """The chief's :class:`RunCheckpoint`, a :class:`WorkerCheckpoint` elsewhere."""
        kind = RunCheckpoint if self.writes_files else WorkerCheckpoint
        return kind(directory, self.model, self.optimizer)


def distributed_epochs(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None,
    images: np.ndarray,
    config: TrainingConfig,
    labels: np.ndarray | None = None,
) -> tuple[keras.optimizers.Optimizer, DistributedEpochs]:
    """The optimizer (default Adam, made in ``strategy.scope()``) and the epochs runner.

    The model's and the optimizer's variables are created in the strategy's scope (so they
    are mirrored on every replica); a model built, or an optimizer made, outside it is
    refused with the fix. Taught in notebook 11_distributed_training.
    """
    check_strategy(strategy)
    check_distributable(labels, config.free_bits)
    if not is_plain_elbo(model, config):
        raise ValueError(
            "fit(strategy=...) trains the closed-form ELBO of notebooks 02-05 only; train this "
            "model or objective without a strategy (strategy=None, or --strategy none)."
        )
    with strategy.scope():
        optimizer = optimizer or keras.optimizers.Adam(config.learning_rate)
        if model.built:
            check_created_in_scope(strategy, model.trainable_variables, "the model's weights")
        check_created_in_scope(strategy, [optimizer.iterations], "the optimizer's variables")
        prepare_for_training(model, optimizer, tf.zeros([1, *model.event_shape]))
    return optimizer, DistributedEpochs(strategy, model, optimizer, images, config)


def check_strategy(strategy: tf.distribute.Strategy) -> None:
    """Require a ``tf.distribute.Strategy`` (fit's ``strategy=``; None means no strategy)."""
    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"strategy must be a tf.distribute.Strategy (or None), got {strategy!r}; e.g. "
            "tf.distribute.MirroredStrategy() for the GPUs of one machine."
        )


def check_distributable(labels: np.ndarray | None, free_bits: float) -> None:
    """What fit under a strategy does not train yet: labels (a ConditionalVAE) or free bits."""
    if labels is not None:
        raise ValueError(
            "fit(strategy=...) trains unconditional models only; train the ConditionalVAE "
            "without a strategy (strategy=None, or --strategy none)."
        )
    if free_bits:
        raise ValueError(
            "free bits clamp the KL averaged over the whole batch, which fit(strategy=...) does "
            "not compute across replicas; use free_bits=0 with a strategy, or no strategy."
        )


def check_created_in_scope(
    strategy: tf.distribute.Strategy, variables: Iterable[keras.Variable], what: str
) -> None:
    """Require ``variables`` (Keras variables) to have been created in ``strategy.scope()``."""
    inside = [strategy.extended.variable_created_in_scope(v.value) for v in variables]
    if not all(inside):
        raise ValueError(
            f"{what} were created outside strategy.scope(), so they are not mirrored on the "
            "replicas. Create the model (unbuilt) and the optimizer inside "
            "`with strategy.scope():`, or pass a new model and no optimizer: fit builds both "
            "there."
        )


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run's files: True except on a multi-worker cluster's
    other workers (the chief is task "chief", or worker 0 when the cluster has none).

    Taught in notebook 11_distributed_training.
    """
    resolver = strategy.cluster_resolver if strategy is not None else None
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if resolver is None or not cluster or resolver.task_type is None:
        return True
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


class WorkerCheckpoint(RunCheckpoint):
    """A non-chief worker's checkpoints: it resumes from the chief's ``directory``; its own
    saves (TensorFlow wants every worker to take part) go into a temporary directory that
    is removed at once. Taught in notebook 11_distributed_training.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
    ) -> None:
        super().__init__(directory, model, optimizer)
        self.optimizer = optimizer

    def save(self, history: list[dict]) -> str | None:
        """Save as the chief does, into a temporary directory; return the chief's newest path."""
        with tempfile.TemporaryDirectory(prefix="vae_worker_") as scratch:
            RunCheckpoint(scratch, self.model, self.optimizer).save(history)
        return tf.train.latest_checkpoint(self.directory)  # the chief's newest, read now
