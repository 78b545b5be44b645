"""fit's checkpoints, in one place: save, resume, refuse another model's, fall back.

A checkpoint holds the model's variables (weights and the sampling RNG state), the
optimizer's, the history so far (JSON) and ``spec``: the model's class, its
:class:`ModelConfig` (for the package's models) and variable shapes, checked on resume (as
nanoGPT checks ``model_args``). A damaged newest checkpoint (a crash during a save) is moved
aside into ``damaged/`` and the one before it is used. :func:`restore_run` gives back a
trained run's model without training anything.

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from vae_tutorial.model_config import ModelConfig

_KEEP = 3  # checkpoints kept: the newest and two to fall back on
_SPEC_KEY = "spec/.ATTRIBUTES/VARIABLE_VALUE"
_HISTORY_KEY = "history/.ATTRIBUTES/VARIABLE_VALUE"


class _Damaged(Exception):
    """A checkpoint's files cannot be read (truncated or missing)."""


def model_spec(model: keras.Model) -> dict:
    """What a checkpoint must agree on with the model: its class, its settings (None for a
    model of your own) and its variables' shapes."""
    config = ModelConfig.of(model)
    return {
        "model": type(model).__name__,
        "config": None if config is None else config.as_dict(),
        "variables": [list(v.shape) for v in model.variables],
    }


def read_history(path: str | None) -> list[dict] | None:
    """The history saved in checkpoint ``path``, or None when it cannot be read."""
    try:
        return json.loads(tf.train.load_variable(path, _HISTORY_KEY))
    except Exception:  # no path, a foreign or damaged checkpoint: no history
        return None


def _new_run_fix(directory) -> str:
    return (
        f"To train this model from scratch, use a new output directory (a new --out / "
        f"checkpoint_dir) or delete {directory}."
    )


def _check_spec(path: str, model, directory) -> None:
    """Refuse a checkpoint written by something else, or for another model."""
    try:
        names = {name for name, _ in tf.train.list_variables(path)}
    except Exception as error:
        raise _Damaged(error) from None
    if _SPEC_KEY not in names:
        raise ValueError(
            f"{directory} holds a checkpoint ({path}) that vae_tutorial.fit did not write. "
            + _new_run_fix(directory)
        )
    try:
        saved = json.loads(tf.train.load_variable(path, _SPEC_KEY))
    except Exception as error:
        raise _Damaged(error) from None
    current = model_spec(model)
    if saved.get("config"):  # settings added since it was written take their defaults
        saved["config"] = ModelConfig.from_dict(saved["config"]).as_dict()
    if saved == current:
        return
    saved_config, config = saved.get("config") or {}, current["config"] or {}
    difference = next(
        (
            f"{key} {before} in the checkpoint, {now} in this model"
            for key, before, now in [
                ("model", saved.get("model"), current["model"]),
                *((k, saved_config.get(k), v) for k, v in config.items()),
            ]
            if before != now
        ),
        f"variable shapes differ: {saved.get('variables')} in the checkpoint, "
        f"{current['variables']} in this model (e.g. another intermediate_dim)",
    )
    raise ValueError(
        f"the checkpoint in {directory} was written for a different model: {difference}. "
        "Resume with the same model settings, or: " + _new_run_fix(directory)
    )


class RunCheckpoint:
    """A run's checkpoints in ``directory``: ``resume()``, ``save()``, ``restore_last_good()``.

    Taught in notebook 05_training_on_mnist.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.model = model
        self._history = tf.Variable("[]", dtype=tf.string)
        objects = {"model": model, "history": self._history}
        objects["spec"] = tf.Variable(json.dumps(model_spec(model)), dtype=tf.string)
        if optimizer is not None:
            objects["optimizer"] = optimizer
        self._checkpoint = tf.train.Checkpoint(**objects)
        self._partial = optimizer is None  # restore the model alone (restore_run)
        self._manager = self._new_manager()

    def _new_manager(self):
        return tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep=_KEEP)

    @property
    def latest(self) -> str | None:
        """The path of the newest checkpoint, or None before the first save."""
        return self._manager.latest_checkpoint

    def resume(self, report: Callable[[str], object] = print) -> list[dict]:
        """Restore the newest checkpoint that reads back; return its history ([] if none).

        A damaged checkpoint is moved into ``damaged/`` (kept, not deleted) and the one
        before it is tried, each such step reported in one line.
        """
        for path in reversed(self._manager.checkpoints):
            try:
                self._restore(path)
            except _Damaged as error:
                reason = " ".join(str(error).split())[:160]
                aside = self._set_aside(path)
                report(f"Checkpoint {path} is damaged ({reason}); moved to {aside}.")
                continue
            return json.loads(self._history.numpy().decode())
        return []

    def _restore(self, path: str) -> None:
        _check_spec(path, self.model, self.directory)
        try:
            status = self._checkpoint.restore(path)
        except Exception as error:  # truncated data files: IndexError, DataLossError ...
            raise _Damaged(error) from None
        if self._partial:
            status.expect_partial()
            return
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise ValueError(
                f"the checkpoint {path} does not match this model and optimizer ({error}); "
                "resume with the same model and optimizer type. " + _new_run_fix(self.directory)
            ) from None

    def _set_aside(self, path: str) -> Path:
        """Move ``path``'s files into ``damaged/`` and drop it from the checkpoint list."""
        aside = Path(self.directory) / "damaged"
        aside.mkdir(exist_ok=True)
        for file in Path(path).parent.glob(Path(path).name + ".*"):
            shutil.move(str(file), aside / file.name)
        remaining = [p for p in self._manager.checkpoints if p != path]
        if remaining:
            tf.compat.v1.train.update_checkpoint_state(
                self.directory, remaining[-1], all_model_checkpoint_paths=remaining
            )
        else:
            os.remove(Path(self.directory) / "checkpoint")
        self._manager = self._new_manager()
        return aside

    def save(self, history: list[dict]) -> str | None:
        """Save the model, optimizer and ``history`` as ``ckpt-<number of epochs>``."""
        self._history.assign(json.dumps(history))
        return self._manager.save(checkpoint_number=len(history))

    def restore_last_good(self) -> str | None:
        """Put the newest checkpoint back into the model and optimizer; return its path."""
        path = self.latest
        if path:
            self._checkpoint.restore(path)
        return path


def restore_run(model: keras.Model, checkpoint_dir: str | os.PathLike) -> list[dict]:
    """Load a trained run's newest checkpoint into ``model``; return the run's history.

    ``model`` must be built as the run's was (same class and sizes): another model's
    checkpoint is refused with a message. Nothing is trained; the optimizer is not needed.
    Taught in notebook 05_training_on_mnist.
    """
    if not model.built:
        model(tf.zeros([1, *model.event_shape]))
    if tf.train.latest_checkpoint(os.fspath(checkpoint_dir)) is None:
        raise ValueError(
            f"no checkpoint in {checkpoint_dir}: train at least one epoch with "
            "checkpoint_dir= (or python -m vae_tutorial train --out ...) first."
        )
    return RunCheckpoint(checkpoint_dir, model).resume()
