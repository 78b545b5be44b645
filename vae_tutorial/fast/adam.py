"""Keras's Adam update, written so that XLA updates in place: the same arithmetic, the
assignments last. Optional reading (see ``vae_tutorial.fast``).

``keras.optimizers.Adam.update_step`` updates a weight tensor with three assignments in turn,
m, then v, then the weight, each reading what the one before wrote. XLA on CPU then adds
copies of the tensors between them and runs their loops about half as fast.
:func:`adam_update_step` computes the three new values first and assigns them last: the
same operations in the same order, so the same numbers bit for bit
(``tests/test_fast_adam.py``, in a graph and under XLA). What it saves per step:
``python benchmarks/profile_step.py --config d`` (``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import keras
from keras import ops


def adam_update_step(
    self: keras.optimizers.Adam, gradient: object, variable: keras.Variable, learning_rate: object
) -> None:
    """``keras.optimizers.Adam.update_step`` (without AMSGrad), its three assignments last."""
    dtype = variable.dtype
    lr = ops.cast(learning_rate, dtype)
    gradient = ops.cast(gradient, dtype)
    local_step = ops.cast(self.iterations + 1, dtype)
    beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
    beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
    index = self._get_variable_index(variable)
    m, v = self._momentums[index], self._velocities[index]
    alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    new_m = ops.add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
    new_v = ops.add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
    step = ops.divide(ops.multiply(new_m, alpha), ops.add(ops.sqrt(new_v), self.epsilon))
    new_variable = ops.subtract(variable, step)
    self.assign(m, new_m)
    self.assign(v, new_v)
    self.assign(variable, new_variable)


@contextlib.contextmanager
def fused_adam_updates(optimizer: keras.optimizers.Optimizer) -> Iterator[None]:
    """Within this block a ``keras.optimizers.Adam`` without AMSGrad updates with
    :func:`adam_update_step`; any other optimizer (a subclass included) is left as it is."""
    if type(optimizer) is not keras.optimizers.Adam or optimizer.amsgrad:
        yield
        return
    optimizer.update_step = types.MethodType(adam_update_step, optimizer)
    try:
        yield
    finally:
        del optimizer.update_step
