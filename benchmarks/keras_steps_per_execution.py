"""vt.fit's own fast loop against Keras' model.fit with steps_per_execution (not a unit test).

    python benchmarks/keras_steps_per_execution.py [--configs a,b,d] [--repeats N]
        [--steps-per-execution 32,128,epoch] [--data arrays,tf.data]
        [--dynamic-data arrays] [--rng keras,hash] [--binarize none,dynamic]
        [--images N] [--data-dir DIR] [--quick]

The question: would Keras' own multi-step execution train as fast as ``vt.fit``'s loop
(vae_tutorial/fast/epochs.py: many GradientTape steps per ``tf.function`` call, every batch
gathered and binarized in the graph, the whole multi-step loop one XLA computation)?

Keras' side is the keras-io ``examples/generative/vae.py`` pattern: a subclass of ``vt.VAE``
whose ``train_step`` override runs the same forward pass, the same loss
(``vt.negative_elbo_terms``: Bernoulli log-likelihood from logits summed over pixels plus the
closed-form KL, mean over the batch) and the same optimizer (``keras.optimizers.Adam(1e-3)``),
trained with ``model.compile(optimizer=..., jit_compile=True, steps_per_execution=N)`` and
``model.fit``. Keras gets the uint8 images as they are: as an in-memory array ("arrays":
Keras' own array adapter, which shuffles indices and gathers each batch in a tf.data map) or
as a hand-built tf.data pipeline ("tf.data": shuffled indices, batched, gathered, prefetched);
``train_step`` converts the batch to [0, 1] (grey levels, binarize="none") or draws a fresh
Bernoulli(intensity) batch (binarize="dynamic") in the graph, with Keras' own random numbers
(``keras.random.uniform`` from a ``SeedGenerator``: rng "keras", the natural Keras way) or with
the hash ``vt.fit`` draws from (``vae_tutorial.counter_random.counter_uniform`` keyed by the
optimizer's step counter: rng "hash", which isolates the loop from the choice of generator).

Configurations: (a) the original article's 784-128-2, batch 32; (b) 784-512-512-20,
batch 1024; (d) the PyTorch examples' 784-400-20, batch 128; all Adam 1e-3, Fashion-MNIST's
training images (all 60,000, or the first --images), each on grey levels and with dynamic
binarization. Every Keras variant is tried: each steps_per_execution (values above one
epoch's steps become "epoch"), each data path (--data on grey levels, --dynamic-data with
dynamic binarization) and, with dynamic binarization, each generator (--rng).

Timing, as bench_training.py times: every model trains one warm-up epoch first (tracing and
XLA compilation excluded; that epoch's mean loss is printed, fresh model against fresh
model, to show both loops train alike), then ours and every Keras variant run one epoch
each, alternately, ``--repeats`` times (the order rotating each round). Images/s is the best
epoch's: the epoch alone (fit's own epoch timer for ours, ``on_epoch_begin`` to
``on_epoch_end`` for Keras, which includes Keras making the epoch's iterator); the whole
``fit(..., epochs=1)`` call's best is printed as well, and images per CPU-second of the
process (the work a loop costs, less sensitive to other jobs on a shared machine, though
TensorFlow's idle threads spin and count too), with its own per-round ratio and the cores
the process got on average (CPU-seconds / wall seconds over the timed calls: below 1, other
jobs had the machine and the wall-clock figures say as much about them as about the loops).
The ratio Keras / ours is taken per round (the two epochs run next to each other), and its
min / median / max over the rounds is printed for every variant; the summary takes the best
Keras variant (best steps_per_execution, data path and generator), by wall clock and by
CPU-seconds. The machine's fp32 matmul peak is measured in the same run (the chain of
bench_training.py (b)), to put (b)'s FLOP/s in context. Fashion-MNIST is read from
--data-dir (default: ../shared/data beside the repository). Rule of issue 22, item 7: Keras'
loop replaces ours if it is within 5 % (ratio >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VAE_TUTORIAL_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training import (  # noqa: E402
    add_common_arguments,
    dense_layers,
    machine_load,
    training_flops_per_image,
)

CONFIGS = {  # hidden widths, latent size, batch size
    "a": ([128], 2, 32),
    "b": ([512, 512], 20, 1024),
    "d": ([400], 20, 128),
}
WITHIN = 0.95  # issue 22, item 7: Keras' loop is kept if it reaches 95 % of ours
SEED = 0


def keras_vae_class():
    """vt.VAE with a ``train_step`` override (keras-io's VAE example, on this package)."""
    import keras
    import tensorflow as tf

    import vae_tutorial as vt
    from vae_tutorial.counter_random import counter_uniform

    class KerasVAE(vt.VAE):
        """``model.fit`` trains it on uint8 batches (B, 784): converted, or binarized, here."""

        def __init__(self, *args, binarize="none", rng="keras", **kwargs):
            super().__init__(*args, **kwargs)
            self.binarize, self.rng = binarize, rng
            self.binarize_seed = keras.random.SeedGenerator(SEED + 1)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
            self.kl_tracker = keras.metrics.Mean(name="kl")

        @property
        def metrics(self):
            return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

        def batch(self, images):
            probs = tf.cast(images, tf.float32) / 255.0
            if self.binarize == "none":
                return probs
            if self.rng == "keras":  # Keras' way: a SeedGenerator, Philox under XLA
                u = keras.random.uniform(tf.shape(probs), seed=self.binarize_seed)
            else:  # fit's counter-based hash, keyed by the step counter: fresh every step
                u = counter_uniform(tf.shape(probs), SEED, self.optimizer.iterations)
            return tf.cast(u < probs, tf.float32)

        def train_step(self, data):
            images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
            x = self.batch(images)
            with tf.GradientTape() as tape:
                logits, mu, log_var = self(x, training=True)
                loss, reconstruction, kl = vt.negative_elbo_terms(x, logits, mu, log_var)
            gradients = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_weights, strict=True))
            size = tf.shape(x)[0]
            for tracker, value in zip(
                self.metrics, (loss, reconstruction, kl), strict=True
            ):  # epoch means over images, as fit's history reports them
                tracker.update_state(value, sample_weight=size)
            return {m.name: m.result() for m in self.metrics}

    return KerasVAE


def make_epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds from on_epoch_begin to on_epoch_end, and the epoch's logs."""

        def __init__(self):
            super().__init__()
            self.seconds, self.logs = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.logs.append(dict(logs or {}))

    return EpochTimer()


def tf_data_pipeline(images, batch_size: int):
    """The uint8 images (N, 784) as a shuffled, batched, prefetched tf.data pipeline."""
    import tensorflow as tf

    resident = tf.constant(images)
    n = len(images)
    indices = tf.data.Dataset.range(n).shuffle(n, seed=SEED, reshuffle_each_iteration=True)
    return (
        indices.batch(batch_size)
        .map(lambda i: tf.gather(resident, i), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


class Ours:
    """vt.fit on one model: every call one epoch."""

    def __init__(self, config, images, binarize):
        import keras

        import vae_tutorial as vt

        hidden, latent, self.batch_size = CONFIGS[config]
        keras.utils.set_random_seed(SEED)
        self.model = vt.VAE(latent_dim=latent, intermediate_dim=hidden, seed=SEED)
        self.optimizer = keras.optimizers.Adam(1e-3)
        self.images, self.binarize = images, binarize
        self.name = "ours (vt.fit)"
        self.epoch_seconds, self.call_seconds, self.cpu_seconds, self.losses = [], [], [], []

    def epoch(self):
        import vae_tutorial as vt

        start, cpu = time.perf_counter(), time.process_time()
        config = vt.TrainingConfig(
            epochs=1, batch_size=self.batch_size, binarize=self.binarize, seed=SEED
        )
        history = vt.fit(
            self.model, self.images, config=config, optimizer=self.optimizer, progress=False
        )
        self.call_seconds.append(time.perf_counter() - start)
        self.cpu_seconds.append(time.process_time() - cpu)
        self.epoch_seconds.append(history[-1]["seconds"])
        self.losses.append(history[-1]["train_loss"])

    def tracing_count(self) -> int:
        from vae_tutorial.compiled import tracing_count

        return tracing_count(self.model)


class KerasFit:
    """model.fit on a KerasVAE compiled with jit_compile=True and steps_per_execution."""

    def __init__(self, config, images, binarize, steps_per_execution, data, rng):
        import keras

        hidden, latent, self.batch_size = CONFIGS[config]
        keras.utils.set_random_seed(SEED)
        self.model = keras_vae_class()(
            latent_dim=latent, intermediate_dim=hidden, seed=SEED, binarize=binarize, rng=rng
        )
        steps_per_epoch = -(-len(images) // self.batch_size)
        self.steps_per_execution = min(steps_per_execution, steps_per_epoch)
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            jit_compile=True,
            steps_per_execution=self.steps_per_execution,
        )
        assert self.model.jit_compile, "Keras turned XLA off"
        flat = images.reshape(len(images), -1)  # (N, 784) uint8, a view
        self.data = flat if data == "arrays" else tf_data_pipeline(flat, self.batch_size)
        self.data_kind = data
        spe = "epoch" if self.steps_per_execution == steps_per_epoch else self.steps_per_execution
        self.name = f"keras spe={spe} {data}" + (f" rng={rng}" if binarize == "dynamic" else "")
        self.epoch_seconds, self.call_seconds, self.cpu_seconds, self.losses = [], [], [], []

    def epoch(self):
        timer = make_epoch_timer()
        kwargs = {"batch_size": self.batch_size, "shuffle": True}
        if self.data_kind != "arrays":  # the pipeline shuffles and batches itself
            kwargs = {"shuffle": False}
        start, cpu = time.perf_counter(), time.process_time()
        self.model.fit(self.data, epochs=1, verbose=0, callbacks=[timer], **kwargs)
        self.call_seconds.append(time.perf_counter() - start)
        self.cpu_seconds.append(time.process_time() - cpu)
        self.epoch_seconds.append(timer.seconds[-1])
        self.losses.append(float(timer.logs[-1]["loss"]))

    def tracing_count(self) -> int:
        """Traces of the tf.functions behind model.train_function (a retracing check)."""
        return sum(
            f.experimental_get_tracing_count() for f in _tf_functions(self.model.train_function)
        )


def _tf_functions(function, depth=4):
    """The tf.functions a closure holds, a few closures deep."""
    found = []
    if hasattr(function, "experimental_get_tracing_count"):
        found.append(function)
        function = getattr(function, "python_function", None)
    for cell in (getattr(function, "__closure__", None) or ()) if depth else ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if callable(value):
            found += _tf_functions(value, depth - 1)
    return found


def matmul_peak(repeats: int) -> float:
    """TensorFlow's fp32 matmul FLOP/s: bench_training.py (b)'s chain of 2048^2 products."""
    import tensorflow as tf

    size, chain = 2048, 5
    a, b = tf.random.normal([size, size]), tf.random.normal([size, size])
    scale = 1.0 / size**0.5

    @tf.function
    def matmul_chain(x, y):
        for _ in tf.range(chain):
            x = tf.linalg.matmul(x, y) * scale
        return x[0, 0]

    matmul_chain(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul_chain(a, b).numpy()
        times.append(time.perf_counter() - start)
    return chain * 2 * size**3 / min(times)


def run_config(config, images, binarize, spe_values, data_kinds, rngs, repeats):
    """Ours and every Keras variant on one configuration: warm-up, then alternate rounds."""
    n = len(images)
    runners = [Ours(config, images, binarize)]
    seen = set()
    for spe in spe_values:
        for data in data_kinds:
            for rng in rngs if binarize == "dynamic" else ["keras"]:
                runner = KerasFit(config, images, binarize, spe, data, rng)
                if runner.name not in seen:  # spe values above one epoch are all "epoch"
                    seen.add(runner.name)
                    runners.append(runner)
    for runner in runners:  # warm-up: tracing, XLA, every batch shape; first-epoch loss
        runner.epoch()
        runner.warmup_loss = runner.losses[-1]
        runner.epoch_seconds.clear()
        runner.call_seconds.clear()
        runner.cpu_seconds.clear()
        runner.traced = runner.tracing_count()
    for round_ in range(repeats):  # alternately, the order rotating: load hits all alike
        shift = round_ % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.epoch()
    ours = runners[0]
    rows = []
    for runner in runners:
        ratios = [o / k for o, k in zip(ours.epoch_seconds, runner.epoch_seconds, strict=True)]
        cpu_ratios = [o / k for o, k in zip(ours.cpu_seconds, runner.cpu_seconds, strict=True)]
        rows.append(
            {
                "name": runner.name,
                "rate": n / min(runner.epoch_seconds),
                "call_rate": n / min(runner.call_seconds),
                "cpu_rate": n / min(runner.cpu_seconds),
                "ratios": ratios,
                "cpu_ratios": cpu_ratios,
                "cores": sum(runner.cpu_seconds) / sum(runner.call_seconds),
                "warmup_loss": runner.warmup_loss,
                "last_loss": runner.losses[-1],
                "retraced": runner.tracing_count() - runner.traced,
            }
        )
    best = max(rows[1:], key=lambda r: r["rate"])
    best_cpu = max(rows[1:], key=lambda r: r["cpu_rate"])
    return rows, best, best_cpu


def spread(values) -> str:
    return f"{min(values):.3f}  {statistics.median(values):.3f}  {max(values):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--configs", default="a,b,d", help="comma list of a, b, d (default all)")
    parser.add_argument(
        "--steps-per-execution",
        default="32,128,epoch",
        help="Keras steps_per_execution values to try; 'epoch' = one epoch's steps",
    )
    parser.add_argument(
        "--data",
        default="arrays,tf.data",
        help="Keras' input: arrays (uint8 numpy, Keras' adapter), tf.data (own pipeline)",
    )
    parser.add_argument(
        "--dynamic-data",
        default="arrays",
        help="Keras' input with binarize=dynamic (default arrays; the rng variants double it)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=60000,
        help="training images per epoch, the first N of Fashion-MNIST's 60,000 (default all)",
    )
    parser.add_argument(
        "--rng",
        default="keras,hash",
        help="dynamic binarization in train_step: keras (keras.random.uniform), hash (fit's)",
    )
    parser.add_argument(
        "--binarize", default="none,dynamic", help="comma list of none, dynamic (default both)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 4,096 images, 1 repeat, spe 32"
    )
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if any(c not in CONFIGS for c in configs):
        parser.error(f"--configs takes a comma list of {', '.join(CONFIGS)}")
    spe_values = [
        10**9 if s.strip() == "epoch" else int(s) for s in args.steps_per_execution.split(",")
    ]
    data_kinds = {
        "none": [d.strip() for d in args.data.split(",")],
        "dynamic": [d.strip() for d in args.dynamic_data.split(",")],
    }
    rngs = [r.strip() for r in args.rng.split(",")]
    binarizations = [b.strip() for b in args.binarize.split(",")]
    repeats = 1 if args.quick else args.repeats
    if args.quick:
        spe_values, rngs = [32], rngs[:1]
        data_kinds = {b: kinds[:1] for b, kinds in data_kinds.items()}

    import keras
    import tensorflow as tf

    import vae_tutorial as vt

    # Every model traces Keras' step function once: TensorFlow's "retracing" warning counts
    # them across models. The timed rounds' own retracing is counted and printed per row.
    tf.get_logger().setLevel("ERROR")
    data = vt.load_dataset("fashion_mnist", args.data_dir)
    images = data.train_images[: 4096 if args.quick else args.images]
    print(
        f"vae_tutorial {vt.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{machine_load()}"
    )
    print(f"data: {data.source}; {len(images):,} images per epoch, best of {repeats}")
    peak = matmul_peak(3 * repeats)
    print(f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s (bench_training.py's chain)\n")

    summary = []
    for config in configs:
        hidden, latent, batch = CONFIGS[config]
        flops, _ = training_flops_per_image(dense_layers(784, hidden, latent))
        shape = "-".join(map(str, [784, *hidden, latent]))
        for binarize in binarizations:
            rows, best, best_cpu = run_config(
                config, images, binarize, spe_values, data_kinds[binarize], rngs, repeats
            )
            print(f"({config}) {shape}, batch {batch}, binarize={binarize}; {machine_load()}")
            print(
                f"    {'loop':<34} {'images/s':>9} {'GFLOP/s':>8} {'whole call':>10} "
                f"{'per CPU-s':>9}  "
                f"{'Keras/ours per round: min  median  max':>38}  "
                f"{'same, per CPU-s':>20}  cores  loss: warm-up, last epoch"
            )
            for row in rows:
                ratio, cpu_ratio = (
                    [spread(row[key]) for key in ("ratios", "cpu_ratios")]
                    if row is not rows[0]
                    else ["", ""]
                )
                print(
                    f"    {row['name']:<34} {row['rate']:>9,.0f} {row['rate'] * flops / 1e9:>8.1f}"
                    f" {row['call_rate']:>10,.0f} {row['cpu_rate']:>9,.0f}  {ratio:>38}  "
                    f"{cpu_ratio:>20}  {row['cores']:>5.2f}  "
                    f"{row['warmup_loss']:.2f}, {row['last_loss']:.2f}"
                    + (
                        f"  (retraced {row['retraced']}x in the timed rounds)"
                        if row["retraced"]
                        else ""
                    )
                )
            ours = rows[0]
            summary.append((config, shape, batch, binarize, ours, best, best_cpu))
            print()

    for title, rate, ratios, pick in (
        ("images/s, epoch timer", "rate", "ratios", 5),
        ("images per CPU-second, whole call", "cpu_rate", "cpu_ratios", 6),
    ):
        print(f"Summary, {title}: the best Keras variant against vt.fit (ratio per round)")
        print(
            f"{'config':<24} {'binarize':<8} {'ours':>8} {'Keras':>8}  "
            f"{'best Keras variant':<32} {'best/best':>9}  {'ratio min  median  max':>22}  "
            "within 5%? (best/best, median)"
        )
        for row in summary:
            config, shape, batch, binarize, ours, best = row[:4] + (row[4], row[pick])
            r = best[ratios]
            ratio = best[rate] / ours[rate]
            print(
                f"{f'({config}) {shape} b{batch}':<24} {binarize:<8} {ours[rate]:>8,.0f} "
                f"{best[rate]:>8,.0f}  {best['name']:<32} {ratio:>9.3f}  {spread(r):>22}  "
                f"{'yes' if ratio >= WITHIN else 'no'}, "
                f"{'yes' if statistics.median(r) >= WITHIN else 'no'}"
            )
        print()
    print(f"({machine_load()}; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
