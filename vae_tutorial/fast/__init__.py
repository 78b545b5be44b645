"""fit's loop, made fast on CPU: optional reading; each trick keeps the plain way's numbers.

:class:`vae_tutorial.epochs.PlainEpochs` is the loop the series teaches, ``for x in
make_batches(...): train_step_terms(...)``. :class:`FastEpochs` (``fit``'s runner on one
device) trains the same steps on the same batches; what makes it faster:

- ``epochs``: many steps per ``tf.function`` call, each batch gathered and binarized inside
  the graph, the whole multi-step loop compiled by XLA for the flat MLP;
- ``packed_images``: the resident images seen four pixels to a 32-bit word, because XLA on
  CPU gathers element by element;
- ``noise``: ``keras.random.normal``'s numbers with an XLA optimization barrier, because XLA
  on CPU otherwise derives the Philox key once per number;
- ``adam``: Keras's Adam update with its assignments last, because XLA on CPU otherwise
  copies the tensors between them.

The noise eps comes from the same seed generator, step for step. In a plain graph its
numbers are the plain loop's; under XLA (the flat MLP's default) TensorFlow turns the same
seed into other standard normal numbers, so the two runs then agree in distribution, not
number for number (``tests/test_fast_noise.py``, ``tests/test_fit.py``).

No lesson module imports this package; ``tests/test_fast_*.py`` check that each trick
gives the numbers of the plain way it replaces. Why each trick pays: ``benchmarks/README.md``.
"""

from vae_tutorial.fast.epochs import FastEpochs, run_in_calls

__all__ = ["FastEpochs", "run_in_calls"]
