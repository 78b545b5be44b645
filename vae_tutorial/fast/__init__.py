"""fit's loop, made fast on CPU: optional reading, and nothing here changes a number.

:class:`vae_tutorial.epochs.PlainEpochs` is the loop the series teaches, ``for x in
make_batches(...): train_step_terms(...)``. :class:`FastEpochs` (``fit``'s runner on one
device) trains the same steps on the same batches with the same noise; what makes it faster:

- ``epochs``: many steps per ``tf.function`` call, each batch gathered and binarized inside
  the graph, the whole multi-step loop compiled by XLA for the flat MLP;
- ``packed_images``: the resident images seen four pixels to a 32-bit word, because XLA on
  CPU gathers element by element;
- ``noise``: ``keras.random.normal``'s numbers with an XLA optimization barrier, because XLA
  on CPU otherwise derives the Philox key once per number.

No lesson module imports this package; ``tests/test_fast_*.py`` check that its numbers are
the plain ones. Why each trick pays: ``benchmarks/README.md``.
"""

from vae_tutorial.fast.epochs import FastEpochs, run_in_calls

__all__ = ["FastEpochs", "run_in_calls"]
