"""Burda et al. (2015)'s MNIST protocol for one stochastic layer, trained with vt.fit (not a
unit test): a VAE (the ELBO, k = 1) and IWAEs with k = 1, 5, 50, each scored by L_5000 on
the test set, printed beside the paper's Table 1.

    python benchmarks/bench_burda.py [--epochs 3280] [--k 1,5,50] [--estimator plain]
        [--train-images N] [--test-images N] [--eval-k 5000] [--data-dir DIR] [--seed 0]

The protocol (section 5 of the paper): dynamically binarized MNIST; encoder 784-200-200-50
and decoder 50-200-200-784 with tanh hidden units, a Gaussian q(z | x) and Bernoulli
pixels; Adam with beta1 0.9, beta2 0.999, epsilon 1e-4, batches of 20; a learning rate of
1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7 (3,280 epochs in all). ``--epochs`` compresses that
schedule into a smaller budget (each stage keeps its share of the steps); ``--train-images``
and ``--test-images`` take the first N images for a quicker run. The full protocol takes
weeks of CPU time per model; a budget run shows the method, not the paper's numbers.

The data is the package's: ``vt.load_dataset("mnist", --data-dir)``, which reads
$VAE_TUTORIAL_DATA_DIR when no --data-dir is given and otherwise downloads MNIST. The script
prints which data it trained and scored on: only real MNIST is comparable to the paper.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

import vae_tutorial as vt
from vae_tutorial.batching import held_out_batches, num_batches
from vae_tutorial.models import GaussianEncoder, VariationalAutoencoder

PAPER_EPOCHS = sum(3**i for i in range(8))  # 3,280
BATCH_SIZE = 20
WIDTHS = (200, 200)
LATENT_DIM = 50
# Burda et al. (2015), Table 1: test NLL in nats on MNIST, one stochastic layer, L_5000.
PAPER_NLL = {("VAE", 1): 86.76, ("VAE", 5): 86.47, ("VAE", 50): 86.35,
             ("IWAE", 1): 86.76, ("IWAE", 5): 85.54, ("IWAE", 50): 84.78}  # fmt: skip


def _tanh_mlp(widths: Sequence[int], name: str) -> keras.Sequential:
    return keras.Sequential([layers.Dense(w, activation="tanh") for w in widths], name=name)


class TanhEncoder(GaussianEncoder):
    """x -> tanh layers -> (mu, log_var): the paper's recognition network."""

    def __init__(self, latent_dim: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.hidden = _tanh_mlp(widths, "hidden")
        self.add_heads(latent_dim)

    def features(self, x: tf.Tensor) -> tf.Tensor:
        return self.hidden(x)


class BurdaVAE(VariationalAutoencoder):
    """The paper's one-stochastic-layer model, 784-200-200-50 and back, tanh hidden units."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(LATENT_DIM, seed=seed)
        self.event_shape = (784,)
        self.encoder = TanhEncoder(LATENT_DIM, WIDTHS)
        self.decoder = keras.Sequential(
            [_tanh_mlp(WIDTHS, "hidden"), layers.Dense(784, name="logits")], name="decoder"
        )


def schedule(epochs: int, steps_per_epoch: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The paper's learning rates, 1e-3 * 10^(-i/7) for a 3^i / 3280 share of the steps."""
    total = epochs * steps_per_epoch
    shares = np.cumsum([3**i for i in range(8)])[:-1] / PAPER_EPOCHS
    boundaries = [int(round(total * share)) for share in shares]
    rates = [1e-3 * 10 ** (-i / 7) for i in range(8)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)


def test_nll(model, images: np.ndarray, k: int, seed: int) -> np.ndarray:
    """-L_k of each test image, binarized once (the same pixels for every model)."""
    batches = held_out_batches(images, batch_size=100, binarize="dynamic", seed=seed)
    return -np.concatenate(
        [vt.iwae_bound(model, tf.reshape(x, [-1, 784]), k, seed=seed).numpy() for x in batches]
    )


def mean_and_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def train_and_score(data, objective: str, k: int, args) -> dict:
    keras.utils.set_random_seed(args.seed)
    model = BurdaVAE(seed=args.seed)
    config = vt.TrainingConfig(
        epochs=args.epochs, batch_size=BATCH_SIZE, seed=args.seed, binarize="dynamic",
        objective=objective, k=k, estimator=args.estimator if objective == "iwae" else "plain",
    )  # fmt: skip
    steps = num_batches(len(data.train_images), BATCH_SIZE)
    optimizer = keras.optimizers.Adam(
        schedule(args.epochs, steps), beta_1=0.9, beta_2=0.999, epsilon=1e-4
    )
    started = time.perf_counter()
    history = vt.fit(model, data.train_images, None, config, optimizer=optimizer, progress=False)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    nll = test_nll(model, data.test_images, args.eval_k, args.seed)
    batches = held_out_batches(data.test_images, batch_size=100, binarize="dynamic", seed=0)
    return {
        "model": "VAE" if objective == "elbo" else "IWAE",
        "k": k,
        "nll": nll,
        "units": vt.active_units(model, batches),
        "train_loss": history[-1]["train_loss"],
        "train_seconds": trained,
        "score_seconds": time.perf_counter() - started,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=PAPER_EPOCHS,
                        help="epochs per model; the schedule is compressed into them "
                        f"(default {PAPER_EPOCHS}, the paper's)")  # fmt: skip
    parser.add_argument("--k", default="1,5,50", help="IWAE's k values (default 1,5,50)")
    parser.add_argument("--estimator", choices=("plain", "dreg"), default="plain",
                        help="IWAE's encoder gradient (default plain, the paper's)")  # fmt: skip
    parser.add_argument("--train-images", type=int, default=None, help="first N (default all)")
    parser.add_argument("--test-images", type=int, default=None, help="first N (default all)")
    parser.add_argument("--eval-k", type=int, default=5000, help="k of the test L_k (5000)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="MNIST's folder (default $VAE_TUTORIAL_DATA_DIR or a download)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]

    data = vt.load_dataset("mnist", args.data_dir)
    if args.train_images or args.test_images:
        data = data.subset(args.train_images, args.test_images)
    print(f"Data: {data.source}")
    print(
        f"{len(data.train_images):,} training images, {args.epochs} epoch(s) per model "
        f"(the paper: 60,000 and {PAPER_EPOCHS}); test NLL = -L_{args.eval_k} on "
        f"{len(data.test_images):,} test images; IWAE's gradient: {args.estimator}.",
        flush=True,
    )
    runs = [("elbo", 1)] + [("iwae", k) for k in ks]
    rows = []
    for objective, k in runs:
        rows.append(train_and_score(data, objective, k, args))
        row = rows[-1]
        print(f"  trained {row['model']} k={k} in {row['train_seconds']:.0f} s, "
              f"scored in {row['score_seconds']:.0f} s", flush=True)  # fmt: skip

    print()
    print(
        "| model | k | test NLL here (nats) | minus the VAE's, paired | active units "
        "| paper's test NLL | paper's, minus its VAE's |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    vae, paper_vae = rows[0], PAPER_NLL[("VAE", 1)]
    for row in rows:
        nll, se = mean_and_se(row["nll"])
        paper = PAPER_NLL.get((row["model"], row["k"]))
        cells = [row["model"], row["k"], f"{nll:.2f} ± {se:.2f}", "-", row["units"], "-", "-"]
        if row is not vae:
            cells[3] = "{:+.2f} ± {:.2f}".format(*mean_and_se(row["nll"] - vae["nll"]))
        if paper is not None:
            cells[5] = f"{paper:.2f}"
            cells[6] = "-" if row is vae else f"{paper - paper_vae:+.2f}"
        print("| " + " | ".join(map(str, cells)) + " |")
    print(
        "± is one standard error over the test images; the paired column is each model's "
        "per-image NLL minus the VAE's on the same binarized images (negative: better)."
    )
    print(
        "The paper's VAE rows with k = 5 and 50 (86.47, 86.35) average k ELBO samples; the "
        "package's ELBO objective draws one, so they are not trained here."
    )


if __name__ == "__main__":
    main()
