"""Training speed and memory of vae_tutorial, measured in one process (not a unit test).

    python benchmarks/bench_training.py [--data-dir DIR] [--repeats N] [--quick] [--json PATH]

(a) Throughput at the original article's configuration (784-128-2 MLP, batch 32, grey
    levels): the article's own loop (benchmarks/article_loop.py: per-step tf.function call
    and ``.numpy()``) against
    ``vt.fit`` on the same images. Both are warmed up first (tracing excluded), then timed
    alternately, best of N. Targets: fit >= 5x the article's loop on grey levels, >= 4x
    with dynamic binarization.
(b) Compute-bound configuration 784-512-512-20, batch 1024: FLOP/s achieved by fit's
    training step against TensorFlow's fp32 matmul peak (a chain of five dependent
    2048 x 2048 products in one tf.function), measured alternately in the same run.
    Targets: >= 70 % of the peak on grey levels, >= 60 % with dynamic binarization.
(c) Peak resident memory of ``python -m vae_tutorial train`` (default configuration, 60,000
    Fashion-MNIST images, 2 epochs) run N times as a subprocess: ru_maxrss of
    RUSAGE_CHILDREN, the largest of the runs, and each run's first and second epoch times
    (XLA compiles during the first). Target: <= 1.2 GB. Measured FIRST: a child's
    ru_maxrss counts the parent's resident pages at fork time, so spawned from a process
    holding TensorFlow and the data (about 1.3 GB after (a) and (b)) it would report the
    parent's size, not the child's.
(d) As (b) at the PyTorch examples' VAE, 784-400-20, batch 128, grey levels, Adam: the
    configuration most learners coming from PyTorch know. Target: >= 60 % of the peak. The
    same with plain SGD is printed beside it: the difference is Adam's update. So is (d)'s
    ceiling: the products its FLOPs count, alone in one XLA loop, against the peak.

Fashion-MNIST is read from --data-dir (default: ../shared/data beside the repository).
The machine's load is printed: on a shared CPU every figure is noisy; best-of-N helps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VAE_TUTORIAL_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_SPEEDUP = 5.0
TARGET_SPEEDUP_DYNAMIC = 4.0
TARGET_PEAK_FRACTION = 0.70
TARGET_PEAK_FRACTION_DYNAMIC = 0.60
TARGET_MEMORY_MB = 1.2 * 1024

COMPUTE_LAYERS = (784, 512, 512, 20)
COMPUTE_BATCH = 1024
PYTORCH_EXAMPLE_LAYERS = (784, 400, 20)  # the PyTorch examples' VAE, Adam 1e-3
PYTORCH_EXAMPLE_BATCH = 128
TARGET_PEAK_FRACTION_PYTORCH_EXAMPLE = 0.60


def dense_layers(input_dim: int, hidden: list[int], latent: int) -> list[tuple[int, int]]:
    """(in, out) of every Dense layer of vt.VAE: encoder, mu and log_var heads, decoder."""
    encoder, width = [], input_dim
    for h in hidden:
        encoder.append((width, h))
        width = h
    heads = [(width, latent), (width, latent)]
    decoder, width = [], latent
    for h in reversed(hidden):
        decoder.append((width, h))
        width = h
    decoder.append((width, input_dim))
    return encoder + heads + decoder


def training_flops_per_image(layers: list[tuple[int, int]]) -> tuple[int, str]:
    """Matmul FLOPs of one training step per image, and the formula used.

    forward 2*in*out per layer; backward: weight gradient 2*in*out per layer, input gradient
    2*in*out per layer except the first encoder layer (the data needs no gradient).
    Element-wise work (activations, loss, sampling, Adam) is not counted.
    """
    macs = sum(i * o for i, o in layers)
    first = layers[0][0] * layers[0][1]
    flops = 2 * macs + 2 * macs + 2 * (macs - first)
    formula = (
        "per image: forward 2*sum(in*out) + weight grads 2*sum(in*out) + input grads "
        f"2*(sum(in*out) - 784*{layers[0][1]}) = 6*{macs:,} - 2*{first:,} = {flops:,} FLOP; "
        f"layers (in, out): {layers}"
    )
    return flops, formula


PEAK_SIZE = 2048


def peak_chain():
    """TensorFlow's fp32 matmul peak: a chain of five dependent PEAK_SIZE x PEAK_SIZE products
    in one tf.function. Returns (a function that runs it once, the FLOPs of a run)."""
    import tensorflow as tf

    size, chain = PEAK_SIZE, 5
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    scale = 1.0 / size**0.5  # keeps the values O(1) along the chain

    @tf.function
    def matmul_chain(x, y):
        # Each product feeds the next, so nothing can be pruned or fused away; returning one
        # element avoids timing the first-touch page faults of a fresh 16 MB output (which
        # halves the apparent rate), and the scaling is 4M multiplies per 17 GFLOP product.
        for _ in tf.range(chain):
            x = tf.linalg.matmul(x, y) * scale
        return x[0, 0]

    def run():
        matmul_chain(a, b).numpy()

    run()  # warm-up
    return run, chain * 2 * size**3


def bench_products_alone(repeats: int, layers, batch_size: int, steps: int = 200) -> dict:
    """The ceiling of a figure like (d): only the products its FLOPs count (every layer's
    forward, weight-gradient and input-gradient product, at the step's shapes), ``steps`` steps
    in one XLA loop as fit runs them, against the matmul peak, timed alternately.

    Each step's inputs carry a scalar from the step before, so XLA can neither hoist a product
    out of the loop nor prune it; that scalar (a sum over every product's result) and the
    additions that carry it are the only other work, so this is a slight underestimate.
    """
    import tensorflow as tf

    gen = tf.random.Generator.from_seed(0)
    weights = [gen.normal([i, o]) * i**-0.5 for i, o in layers]
    inputs = [gen.normal([batch_size, i]) for i, _ in layers]
    output_grads = [gen.normal([batch_size, o]) for _, o in layers]

    @tf.function(jit_compile=True)
    def products(weights, inputs, output_grads):
        def step(i, carry):
            total = tf.constant(0.0)
            for n, (w, x, g) in enumerate(zip(weights, inputs, output_grads, strict=True)):
                x, g = x + carry, g + carry
                results = [x @ w, tf.matmul(x, g, transpose_a=True)]  # forward, weight gradient
                if n > 0:  # input gradient: every layer but the first (the data needs none)
                    results.append(tf.matmul(g, w, transpose_b=True))
                total += sum(tf.reduce_sum(r) for r in results)
            return i + 1, total * 1e-12

        return tf.while_loop(lambda i, _: i < steps, step, (0, tf.constant(0.0)))[1]

    peak_run, peak_flops = peak_chain()
    products(weights, inputs, output_grads).numpy()  # warm-up: XLA compiles
    peak_times, product_times = [], []
    for _ in range(max(repeats, 3)):
        start = time.perf_counter()
        peak_run()
        peak_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        products(weights, inputs, output_grads).numpy()
        product_times.append(time.perf_counter() - start)
    flops_per_image, _ = training_flops_per_image(layers)
    rate = steps * batch_size * flops_per_image / min(product_times)
    peak = peak_flops / min(peak_times)
    return {"flops_per_second": rate, "matmul_peak_flops": peak, "fraction_of_peak": rate / peak}


def print_flops(label: str, r: dict) -> None:
    print(f"{label} FLOPs counted {r['formula']}")
    print(
        f"    matmul peak {r['matmul_peak_flops'] / 1e9:.1f} GFLOP/s "
        f"(chain of 5 fp32 {r['matmul_size']}x{r['matmul_size']} products in a tf.function)"
    )
    for binarize in ("none", "dynamic"):
        if binarize in r:
            print(
                f"    fit, batch {r['batch_size']}, binarize={binarize}: "
                f"{r[binarize]['flops_per_second'] / 1e9:.1f} GFLOP/s wall "
                f"({100 * r[binarize]['fraction_of_peak']:.0f}% of peak; fit's own timer "
                f"{100 * r[binarize]['fraction_of_peak_fit_timer']:.0f}%)"
            )


def machine_load() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unavailable"


# --------------------------------------------------------------------------------------------
# (a) the original article's loop vs fit


def bench_article_vs_fit(images, repeats: int) -> dict:
    import article_loop
    import keras
    import tensorflow as tf

    import vae_tutorial as vt
    from vae_tutorial.training import fit

    n = len(images)
    keras.utils.set_random_seed(0)
    article_model = article_loop.VAE(latent_dim=2, intermediate_dim=128, input_dim=784)
    article_optimizer = tf.keras.optimizers.Adam(1e-3)
    article_data = article_loop.make_dataset(images, batch_size=32)
    # Warm-up, one whole epoch each: tracing, and every batch shape (the last batch may be
    # smaller: another trace for the article's loop; fit runs it eagerly).
    article_loop.run_epoch(article_model, article_optimizer, article_data)

    runs = {}
    for binarize in ("none", "dynamic"):
        model = vt.VAE(latent_dim=2, intermediate_dim=128, seed=0)
        kwargs = dict(
            config=vt.TrainingConfig(epochs=1, batch_size=32, binarize=binarize),
            optimizer=keras.optimizers.Adam(1e-3),
            progress=False,
        )
        fit(model, images, **kwargs)  # warm-up
        runs[binarize] = (model, kwargs, [], [])

    article_times = []
    for _ in range(repeats):  # alternately: the machine's load hits all alike
        start = time.perf_counter()
        article_loop.run_epoch(article_model, article_optimizer, article_data)
        article_times.append(time.perf_counter() - start)
        for model, kwargs, times, reported in runs.values():
            start = time.perf_counter()
            history = fit(model, images, **kwargs)
            times.append(time.perf_counter() - start)
            reported.append(history[-1]["images_per_second"])
    article_rate = n / min(article_times)
    result = {"images": n, "repeats": repeats, "article_images_per_second": article_rate}
    result["article_seconds"] = article_times
    for binarize, (_, _, times, reported) in runs.items():
        result[binarize] = {
            "fit_images_per_second": n / min(times),
            "fit_images_per_second_reported_by_fit": max(reported),
            "speedup": n / min(times) / article_rate,
            "fit_seconds": times,
        }
    return result


# --------------------------------------------------------------------------------------------
# (b) FLOP/s of fit's step vs the matmul peak


def bench_flops(images, repeats: int, layers=COMPUTE_LAYERS, batch_size=COMPUTE_BATCH,
                modes=("none", "dynamic"), optimizer_name="adam") -> dict:  # fmt: skip
    import keras

    import vae_tutorial as vt
    from vae_tutorial.training import fit

    matmul_chain, matmul_flops = peak_chain()
    hidden, latent = list(layers[1:-1]), layers[-1]
    flops_per_image, formula = training_flops_per_image(dense_layers(784, hidden, latent))
    model = vt.VAE(latent_dim=latent, intermediate_dim=hidden, seed=0)
    optimizer = keras.optimizers.get(
        {"class_name": optimizer_name, "config": {"learning_rate": 1e-3}}
    )
    results = {}

    def one_epoch(binarize):
        config = vt.TrainingConfig(epochs=1, batch_size=batch_size, binarize=binarize)
        return fit(model, images, config=config, optimizer=optimizer, progress=False)

    for binarize in modes:
        one_epoch(binarize)  # warm-up: a whole epoch, every batch shape
        results[binarize] = {"seconds": [], "reported": []}
    peak_times = []
    for _ in range(repeats):
        for _ in range(3):
            start = time.perf_counter()
            matmul_chain()
            peak_times.append(time.perf_counter() - start)
        for binarize, res in results.items():
            start = time.perf_counter()
            history = one_epoch(binarize)
            res["seconds"].append(time.perf_counter() - start)
            res["reported"].append(history[-1]["images_per_second"])
    peak = matmul_flops / min(peak_times)
    out = {
        "layers": list(layers),
        "batch_size": batch_size,
        "images": len(images),
        "flops_per_image": flops_per_image,
        "formula": formula,
        "matmul_peak_flops": peak,
        "matmul_size": PEAK_SIZE,
        "optimizer": optimizer_name,
    }
    for binarize, res in results.items():
        wall = len(images) * flops_per_image / min(res["seconds"])
        inside = max(res["reported"]) * flops_per_image
        out[binarize] = {
            "flops_per_second": wall,
            "fraction_of_peak": wall / peak,
            "flops_per_second_fit_timer": inside,
            "fraction_of_peak_fit_timer": inside / peak,
            "seconds": res["seconds"],
        }
    return out


# --------------------------------------------------------------------------------------------
# (c) peak memory of the CLI in a subprocess


def bench_memory(data_dir: Path, limit_train: int | None, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "vae_tutorial",
            "train",
            "--dataset",
            "fashion_mnist",
            "--data-dir",
            str(data_dir),
            "--epochs",
            "2",
            "--no-figures",
        ]
        if limit_train:
            command += ["--limit-train", str(limit_train)]
        parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        epochs, seconds = [], []
        for run in range(runs):  # each run a fresh process: XLA compiles in every first epoch
            out = Path(tmp) / f"run{run}"
            start = time.perf_counter()
            result = subprocess.run(
                [*command, "--out", str(out)], capture_output=True, text=True, cwd=REPO
            )
            seconds.append(time.perf_counter() - start)
            if result.returncode != 0:
                raise SystemExit(f"error: the training subprocess failed:\n{result.stderr[-2000:]}")
            metrics = json.loads((out / "metrics.json").read_text())
            epochs.append([e["seconds"] for e in metrics["epochs"]])
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # bytes vs kB
    if after <= before or after <= parent:
        print("warning: the figure may be the parent's or an earlier child's peak, not this run's")
    return {
        "command": " ".join([*command[1:], "--out", "DIR"]),
        "peak_rss_mb": after * scale,  # the largest of the runs
        "parent_rss_mb": parent * scale,
        "seconds": seconds,
        "train_images": limit_train or 60000,
        "test_elbo": metrics["test_elbo"],
        "epoch_seconds": epochs,  # per run: [first, second]
    }


# --------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-dir and --repeats, as every benchmark here takes them."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder holding fashion-mnist/ (default: ../shared/data)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 10,000 images, 1 repeat, 5,000-image memory run",
    )
    parser.add_argument("--json", type=Path, default=None, help="also save the figures here")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c,d")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    # (c) first: a child's ru_maxrss includes the parent's resident pages at fork time, so the
    # subprocess must start while this process is small (before TensorFlow and any data).
    report = {"quick": args.quick, "load_before": machine_load()}
    repeats = 1 if args.quick else args.repeats
    rows = []
    memory_row = None
    if "c" not in skip:
        c = bench_memory(args.data_dir, 5000 if args.quick else None, repeats)
        report["c_memory"] = c
        print(
            f"(c) {c['command']}, {len(c['seconds'])} run(s): peak RSS {c['peak_rss_mb']:,.0f} MB, "
            f"test ELBO {c['test_elbo']:.2f} (parent's RSS at spawn {c['parent_rss_mb']:.0f} MB); "
            "epochs 1 and 2 of each run: "
            + "; ".join(f"{first:.2f}, {second:.2f} s" for first, second in c["epoch_seconds"])
        )
        memory_row = (
            "(c) peak RSS of the CLI, 2 epochs" + (" (quick: 5k)" if args.quick else ""),
            f"{c['peak_rss_mb']:,.0f} MB",
            f"<= {TARGET_MEMORY_MB:,.0f} MB",
            c["peak_rss_mb"] <= TARGET_MEMORY_MB,
        )

    import tensorflow as tf

    import vae_tutorial as vt

    data = vt.load_dataset("fashion_mnist", args.data_dir)
    images = data.train_images[:10000] if args.quick else data.train_images
    print(f"vae_tutorial {vt.__version__}, TensorFlow {tf.__version__}; {machine_load()}")
    print(f"data: {data.source}; timing {len(images):,} images, best of {repeats}\n")
    if "a" not in skip:
        a = bench_article_vs_fit(images, repeats)
        report["a_article_vs_fit"] = a
        print(
            f"(a) 784-128-2, batch 32: article loop {a['article_images_per_second']:,.0f} images/s"
        )
        for binarize, target in (("none", TARGET_SPEEDUP), ("dynamic", TARGET_SPEEDUP_DYNAMIC)):
            r = a[binarize]
            print(
                f"    fit, binarize={binarize}: {r['fit_images_per_second']:,.0f} images/s "
                f"(fit's own timer {r['fit_images_per_second_reported_by_fit']:,.0f})"
            )
            rows.append(
                (
                    f"(a) fit / article loop, images/s, binarize={binarize}",
                    f"{r['speedup']:.1f}x",
                    f">= {target:.0f}x",
                    r["speedup"] >= target,
                )
            )
    if "b" not in skip:
        b = bench_flops(images, repeats)
        report["b_flops"] = b
        print_flops("(b)", b)
        for binarize, name, target in (
            ("none", "(b) fit step FLOP/s / matmul peak (grey)", TARGET_PEAK_FRACTION),
            ("dynamic", "(b') same, dynamic binarization", TARGET_PEAK_FRACTION_DYNAMIC),
        ):
            frac = b[binarize]["fraction_of_peak"]
            rows.append((name, f"{100 * frac:.1f}%", f">= {100 * target:.0f}%", frac >= target))
    if "d" not in skip:
        d = bench_flops(images, repeats, PYTORCH_EXAMPLE_LAYERS, PYTORCH_EXAMPLE_BATCH, ("none",))
        report["d_flops_pytorch_example"] = d
        print_flops("(d)", d)
        # The same with plain SGD: what Adam's update (memory-bound, 3 tensors per weight) costs.
        d_sgd = bench_flops(
            images, repeats, PYTORCH_EXAMPLE_LAYERS, PYTORCH_EXAMPLE_BATCH, ("none",), "sgd"
        )
        report["d_flops_pytorch_example_sgd"] = d_sgd
        print_flops("(d) with SGD instead of Adam, for context:", d_sgd)
        hidden, latent = list(PYTORCH_EXAMPLE_LAYERS[1:-1]), PYTORCH_EXAMPLE_LAYERS[-1]
        ceiling = bench_products_alone(
            repeats, dense_layers(784, hidden, latent), PYTORCH_EXAMPLE_BATCH
        )
        report["d_products_alone"] = ceiling
        print(
            f"(d) its ceiling: the step's products alone in one XLA loop (nothing else), "
            f"{ceiling['flops_per_second'] / 1e9:.1f} GFLOP/s = "
            f"{100 * ceiling['fraction_of_peak']:.0f}% of the peak measured beside it "
            f"({ceiling['matmul_peak_flops'] / 1e9:.1f} GFLOP/s)"
        )
        frac = d["none"]["fraction_of_peak"]
        rows.append(
            (
                "(d) same at 784-400-20, batch 128 (grey)",
                f"{100 * frac:.1f}%",
                f">= {100 * TARGET_PEAK_FRACTION_PYTORCH_EXAMPLE:.0f}%",
                frac >= TARGET_PEAK_FRACTION_PYTORCH_EXAMPLE,
            )
        )
    if memory_row is not None:
        rows.append(memory_row)
    report["load_after"] = machine_load()
    report["table"] = [
        {"figure": name, "measured": value, "target": target, "pass": ok}
        for name, value, target, ok in rows
    ]
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'figure':<{width}}  {'measured':>10}  {'target':>10}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>10}  {'PASS' if ok else 'FAIL'}")
    print(f"({report['load_after']})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
