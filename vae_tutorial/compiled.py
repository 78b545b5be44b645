"""One ``tf.function`` per model, so that training several models never retraces a shared one.

A module-level ``tf.function`` that takes the model as an argument retraces for every new
model, and after a few models TensorFlow warns about excessive retracing. Here each model
gets its own compiled functions, which hold the model weakly: they go away with it.
Taught in notebook 04_gradienttape_training_step.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

import keras
import tensorflow as tf

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _call_with_model(model_ref, function, *args, **kwargs):
    return function(model_ref(), *args, **kwargs)


def compiled_for(model: keras.Model, function: Callable, **tf_function_options: object) -> Callable:
    """``tf.function`` of ``function(model, *args)``, made once per model and options."""
    per_model = _CACHE.setdefault(model, {})
    key = (function, tuple(sorted(tf_function_options.items())))
    if key not in per_model:
        # A partial, not a lambda: TensorFlow counts retracing per code object, and every
        # model's function is traced once, which is no retracing at all.
        bound = functools.partial(_call_with_model, weakref.ref(model), function)
        per_model[key] = tf.function(bound, **tf_function_options)
    return per_model[key]


def tracing_count(model: keras.Model) -> int:
    """How many times ``model``'s compiled functions were traced so far (a retracing check)."""
    return sum(f.experimental_get_tracing_count() for f in _CACHE.get(model, {}).values())
