"""Student submissions for the assignment tests: the released notebooks, answered.

``answered(assignment, mistake)`` fills every solution cell of a released notebook with the
source's solution (markers removed), then plants one of the classic mistakes below, each a
one-line edit in the part it belongs to. ``MISTAKES[name].lost`` names the test cells that
must score zero; every other autograded cell must keep full marks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

COURSE = Path(__file__).resolve().parents[1] / "assignments"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
# The mistake that tests the course's cell timeout: graded through nbgrader, which interrupts
# it (tests/test_assignments.py); tests/test_assignment_mistakes.py checks the others.
TIMEOUT_MISTAKE = "endless_loop"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass(frozen=True)
class Mistake:
    edits: dict[str, list[tuple[str, str, str]]]  # assignment -> [(cell id, old, new)]
    lost: dict[str, set[str]]  # assignment -> the test cells it must lose


MISTAKES = {
    # the original article's "obvious fix": a mean over pixels instead of a sum
    "mean_over_pixels": Mistake(
        {
            "02_elbo": [
                (
                    "bernoulli-log-likelihood",
                    "return tf.reduce_sum(per_pixel, axis=-1)",
                    "return tf.reduce_mean(per_pixel, axis=-1)",
                )
            ]
        },
        {"02_elbo": {"test-bernoulli-log-likelihood"}},
    ),
    # the variance where the standard deviation belongs
    "exp_log_var": Mistake(
        {"01_reparameterization": [("reparameterize", "tf.exp(0.5 * log_var)", "tf.exp(log_var)")]},
        {"01_reparameterization": {"test-reparameterize"}},
    ),
    "kl_sign_flipped": Mistake(
        {
            "02_elbo": [
                ("kl-divergence", "return 0.5 * tf.reduce_sum(", "return -0.5 * tf.reduce_sum(")
            ]
        },
        {"02_elbo": {"test-kl-divergence"}},
    ),
    # the reparameterized sample cut off the tape: no gradient reaches mu and log_var
    "sample_detached": Mistake(
        {
            "01_reparameterization": [
                ("pathwise-gradient", "f(z))", "f(tf.stop_gradient(z)))"),
            ],
            "03_model": [
                (
                    "vae",
                    "z = mu + tf.exp(0.5 * log_var) * eps",
                    "z = tf.stop_gradient(mu + tf.exp(0.5 * log_var) * eps)",
                )
            ],
        },
        {"01_reparameterization": {"test-pathwise-gradient"}, "03_model": {"test-vae"}},
    ),
    # the package's function in place of an implementation
    "package_imported": Mistake(
        {
            "02_elbo": [
                (
                    "kl-divergence",
                    "def kl_divergence(",
                    "from vae_tutorial import kl_divergence as package_kl\n\n\ndef kl_divergence(",
                ),
                (
                    "kl-divergence",
                    "return 0.5 * tf.reduce_sum(",
                    "return package_kl(mu, log_var)\n    return 0.5 * tf.reduce_sum(",
                ),
            ]
        },
        {"02_elbo": {"test-kl-divergence"}},
    ),
    # assignment 04_training_step
    # the loss computed after the tape stopped recording: no gradient reaches any weight
    "loss_outside_the_tape": Mistake(
        {
            "04_training_step": [
                (
                    "train-step",
                    "        loss = vt.vae_loss(x, logits, mu, log_var)\n    gradients",
                    "    loss = vt.vae_loss(x, logits, mu, log_var)\n    gradients",
                )
            ]
        },
        {"04_training_step": {"test-train-step"}},
    ),
    # the epoch's last batch loss reported for the whole epoch
    "epoch_loss_is_the_last_batch": Mistake(
        {
            "04_training_step": [
                ("train-epoch", "return float(np.mean(losses))", "return float(losses[-1])")
            ]
        },
        {"04_training_step": {"test-train-epoch"}},
    ),
    # an endless loop in one part
    "endless_loop": Mistake(
        {
            "01_reparameterization": [
                ("pathwise-gradient", "mu = tf.Variable(float(mu))", "while True:\n        pass"),
            ]
        },
        {"01_reparameterization": {"test-pathwise-gradient"}},
    ),
    # assignment 06_latent_space
    # the straight line in place of the great circle
    "slerp_is_lerp": Mistake(
        {
            "06_latent_space": [
                ("slerp", "return weight0 * z0 + weight1 * z1", "return (1 - t) * z0 + t * z1")
            ]
        },
        {"06_latent_space": {"test-slerp"}},
    ),
    # no limit for parallel vectors: sin(Omega) = 0 divides 0, giving NaN
    "slerp_divides_by_sin_0": Mistake(
        {"06_latent_space": [("slerp", "safe = sin_omega > 1e-6", "safe = sin_omega >= 0.0")]},
        {"06_latent_space": {"test-slerp"}},
    ),
    # the angle from the raw dot product, without dividing by the lengths
    "slerp_unnormalised": Mistake(
        {"06_latent_space": [("slerp", "np.sum(unit0 * unit1,", "np.sum(z0 * z1,")]},
        {"06_latent_space": {"test-slerp"}},
    ),
    # the activity of a unit from its log-variance instead of its posterior mean
    "activity_of_log_var": Mistake(
        {
            "06_latent_space": [
                ("active-units", "np.asarray(mu, np.float64)", "np.asarray(log_var, np.float64)")
            ]
        },
        {"06_latent_space": {"test-active-units"}},
    ),
    # the variance across the units of each image instead of across the images
    "activity_over_the_wrong_axis": Mistake(
        {"06_latent_space": [("active-units", "axis=0)  # A_j", "axis=1)  # A_j")]},
        {"06_latent_space": {"test-active-units"}},
    ),
    # an even grid of z values instead of normal quantiles
    "grid_evenly_spaced": Mistake(
        {
            "06_latent_space": [
                (
                    "manifold-grid",
                    "quantiles = stats.norm.ppf((np.arange(n) + 0.5) / n)",
                    "quantiles = np.linspace(-2.0, 2.0, n)",
                )
            ]
        },
        {"06_latent_space": {"test-manifold-grid"}},
    ),
    # the spread of the posterior means alone, without the mean posterior variance
    "aggregate_variance_between_only": Mistake(
        {"06_latent_space": [("aggregate-moments", "between + within  #", "between  #")]},
        {"06_latent_space": {"test-aggregate-moments"}},
    ),
    # assignment 07_convolutional
    # floor where "same" padding takes the ceiling: wrong whenever the stride does not divide n
    "same_size_floored": Mistake(
        {"07_convolutional": [("conv-output-size", "math.ceil(n / stride)", "n // stride")]},
        {"07_convolutional": {"test-conv-output-size"}},
    ),
    # a "valid" transposed convolution without the kernel's overhang max(k - s, 0)
    "transpose_size_without_max_term": Mistake(
        {
            "07_convolutional": [
                (
                    "conv-transpose-output-size",
                    "n * stride + max(kernel - stride, 0)",
                    "n * stride",
                )
            ]
        },
        {"07_convolutional": {"test-conv-transpose-output-size"}},
    ),
    # one head for both: log_var is mu
    "log_var_head_shared_with_mu": Mistake(
        {
            "07_convolutional": [
                (
                    "conv-encoder",
                    "return self.mu(h), self.log_var(h)",
                    "return self.mu(h), self.mu(h)",
                )
            ]
        },
        {"07_convolutional": {"test-conv-encoder"}},
    ),
    # a 5x5 "valid" last layer: 28 + max(5 - 1, 0) = 32 pixels a side
    "decoder_logits_32x32": Mistake(
        {
            "07_convolutional": [
                (
                    "conv-decoder",
                    'layers.Conv2DTranspose(1, 3, padding="same")',
                    'layers.Conv2DTranspose(1, 5, padding="valid")',
                )
            ]
        },
        {"07_convolutional": {"test-conv-decoder"}},
    ),
    # pixel probabilities where the loss wants logits
    "decoder_sigmoid_output": Mistake(
        {
            "07_convolutional": [
                (
                    "conv-decoder",
                    'layers.Conv2DTranspose(1, 3, padding="same")',
                    'layers.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")',
                )
            ]
        },
        {"07_convolutional": {"test-conv-decoder"}},
    ),
    # assignments 01_reparameterization, 03_model and 05_iwae: the noise convention
    # the seed not passed on: an integer seed no longer repeats the draw
    "seed_ignored": Mistake(
        {
            "01_reparameterization": [
                (
                    "reparameterize",
                    "eps = keras.random.normal(tf.shape(mu), seed=seed)",
                    "eps = keras.random.normal(tf.shape(mu))",
                )
            ]
        },
        {"01_reparameterization": {"test-reparameterize"}},
    ),
    # one draw of noise for all k importance samples: L_k collapses to L_1
    "iwae_one_draw": Mistake(
        {
            "05_iwae": [
                (
                    "iwae-bound",
                    "eps = keras.random.normal((k, *mu.shape), seed=seed)",
                    "eps = tf.repeat(keras.random.normal((1, *mu.shape), seed=seed), k, axis=0)",
                )
            ]
        },
        {"05_iwae": {"test-iwae-bound"}},
    ),
    # assignment 10_conditional (and 03_model, whose VAE owns its noise the same way)
    # the article's noise from TensorFlow's global random state, not the model's generator
    "unseeded_noise": Mistake(
        {
            assignment: [
                (
                    cell,
                    "eps = keras.random.normal(tf.shape(mu), seed=self.seed_generator)",
                    "eps = tf.random.normal(tf.shape(mu))",
                )
            ]
            for assignment, cell in (("03_model", "vae"), ("10_conditional", "conditional-vae"))
        },
        {"03_model": {"test-vae"}, "10_conditional": {"test-conditional-vae"}},
    ),
    # the class as one number instead of a one-hot vector
    "label_as_number": Mistake(
        {
            "10_conditional": [
                (
                    "conditional-encoder",
                    "y = tf.one_hot(labels, self.num_classes, dtype=x.dtype)",
                    "y = tf.cast(labels, x.dtype)[:, None]",
                )
            ]
        },
        {"10_conditional": {"test-conditional-encoder"}},
    ),
    # the label not given to the decoder: p(x | z) in place of p(x | z, y)
    "decoder_without_label": Mistake(
        {
            "10_conditional": [
                (
                    "conditional-decoder",
                    "return self.logits(self.hidden(tf.concat([z, y], axis=-1)))",
                    "return self.logits(self.hidden(z))",
                )
            ]
        },
        {"10_conditional": {"test-conditional-decoder"}},
    ),
    "cvae_kl_sign_flipped": Mistake(
        {
            "10_conditional": [
                ("conditional-vae", "kl = 0.5 * tf.reduce_sum(", "kl = -0.5 * tf.reduce_sum(")
            ]
        },
        {"10_conditional": {"test-conditional-vae"}},
    ),
    # assignment 11_data_parallel
    # each replica's mean over its own share: right only for equal shares
    "per_replica_mean": Mistake(
        {
            "11_data_parallel": [
                (
                    "replica-loss",
                    "return tf.reduce_sum(per_example_losses) / tf.cast(global_batch_size, "
                    "tf.float32)",
                    "return tf.reduce_mean(per_example_losses)",
                )
            ]
        },
        {"11_data_parallel": {"test-replica-loss"}},
    ),
    # B // R examples per replica: the rest of the batch is never trained on
    "remainder_dropped": Mistake(
        {
            "11_data_parallel": [
                (
                    "replica-shares",
                    "per_replica = math.ceil(global_batch_size / num_replicas)",
                    "per_replica = global_batch_size // num_replicas",
                )
            ]
        },
        {"11_data_parallel": {"test-replica-shares"}},
    ),
    # the replicas' gradients, already divided by the global batch, averaged: divided twice
    "gradients_averaged": Mistake(
        {
            "11_data_parallel": [
                (
                    "data-parallel-gradients",
                    "tf.add_n(list(gradients)) for",
                    "tf.add_n(list(gradients)) / len(shares) for",
                )
            ]
        },
        {"11_data_parallel": {"test-data-parallel-gradients"}},
    ),
    # every step's loss divided by the nominal batch size, the smaller last batch's too
    "nominal_last_batch": Mistake(
        {
            "11_data_parallel": [
                (
                    "step-batch-sizes",
                    "min(global_batch_size, n_images - start)",
                    "global_batch_size",
                )
            ]
        },
        {"11_data_parallel": {"test-step-batch-sizes"}},
    ),
    # assignment 08_likelihoods
    # the textbook normalizer 2 artanh(1 - 2 lambda) / (1 - 2 lambda) everywhere: 0/0 at 1/2,
    # and lambda rounds to 1 for large logits
    "textbook_normalizer": Mistake(
        {
            "08_likelihoods": [
                (
                    "continuous-bernoulli-log-normalizer",
                    "return tf.where(near_half, series, direct)",
                    "lam = tf.sigmoid(logits)\n"
                    "    return tf.math.log(2.0 * tf.atanh(1.0 - 2.0 * lam) / (1.0 - 2.0 * lam))",
                )
            ]
        },
        {"08_likelihoods": {"test-continuous-bernoulli-log-normalizer"}},
    ),
    # the direct formula fed logit 0 inside tf.where: the value is right, the gradient NaN
    "unmasked_where": Mistake(
        {
            "08_likelihoods": [
                (
                    "continuous-bernoulli-log-normalizer",
                    "eta = tf.where(near_half, tf.ones_like(logits), tf.abs(logits))",
                    "eta = tf.abs(logits)",
                )
            ]
        },
        {"08_likelihoods": {"test-continuous-bernoulli-log-normalizer"}},
    ),
    # levels 0 and 255 get a plain CDF difference: the 256 probabilities do not sum to 1
    "no_edge_bins": Mistake(
        {
            "08_likelihoods": [
                (
                    "discretized-logistic-log-prob",
                    "tf.where(k > 0, lower, -np.inf), tf.where(k < 255, upper, np.inf)",
                    "lower, upper  # no edge bins",
                )
            ]
        },
        {"08_likelihoods": {"test-discretized-logistic-log-prob"}},
    ),
    # log(sigmoid(b) - sigmoid(a)): log 0 where both round to 1 (or 0) in float32
    "log_of_cdf_difference": Mistake(
        {
            "08_likelihoods": [
                (
                    "discretized-logistic-log-prob",
                    "return (",
                    "return tf.math.log(tf.sigmoid(upper) - tf.sigmoid(lower))\n    return (",
                )
            ]
        },
        {"08_likelihoods": {"test-discretized-logistic-log-prob"}},
    ),
    "bits_without_ln2": Mistake(
        {"08_likelihoods": [("bits-per-dim", "(dims * math.log(2.0))", "dims")]},
        {"08_likelihoods": {"test-bits-per-dim"}},
    ),
    # a density on [0, 1] scored without the 8 bits of the 8-bit cells
    "bits_without_offset": Mistake(
        {
            "08_likelihoods": [
                (
                    "bits-per-dim",
                    "offset = math.log2(256) if dequantized else 0.0",
                    "offset = 0.0",
                )
            ]
        },
        {"08_likelihoods": {"test-bits-per-dim"}},
    ),
    # assignment 09_collapse
    "kl_summed_over_dimensions": Mistake(
        {
            "09_collapse": [
                (
                    "kl-per-dimension",
                    "return 0.5 * (tf.exp(log_var) + tf.square(mu) - 1.0 - log_var)",
                    "return 0.5 * tf.reduce_sum("
                    "tf.exp(log_var) + tf.square(mu) - 1.0 - log_var, axis=-1)",
                )
            ]
        },
        {"09_collapse": {"test-kl-per-dimension"}},
    ),
    "kl_log_var_sign": Mistake(
        {"09_collapse": [("kl-per-dimension", "- 1.0 - log_var)", "- 1.0 + log_var)")]},
        {"09_collapse": {"test-kl-per-dimension"}},
    ),
    # the floor on the KL summed over the dimensions, max(lambda d, sum_j KL_j)
    "free_bits_on_the_sum": Mistake(
        {
            "09_collapse": [
                (
                    "free-bits-kl",
                    "return tf.reduce_sum(tf.maximum(free_bits, per_dimension))",
                    "return tf.maximum("
                    "free_bits * per_dimension.shape[-1], tf.reduce_sum(per_dimension))",
                )
            ]
        },
        {"09_collapse": {"test-free-bits-kl"}},
    ),
    # the floor on each image's KL_j before the batch mean
    "free_bits_per_image": Mistake(
        {
            "09_collapse": [
                (
                    "free-bits-kl",
                    "tf.reduce_mean(kl_per_dimension(mu, log_var), axis=0)",
                    "tf.reduce_mean(tf.maximum(free_bits, kl_per_dimension(mu, log_var)), axis=0)",
                )
            ]
        },
        {"09_collapse": {"test-free-bits-kl"}},
    ),
    # log-sum-exp without - log N: the mixture's 1/N left out, so the ceiling is 0, not log N
    "information_without_log_n": Mistake(
        {
            "09_collapse": [
                (
                    "mutual-information",
                    "tf.reduce_logsumexp(log_q, axis=1) - tf.math.log(n)",
                    "tf.reduce_logsumexp(log_q, axis=1)",
                )
            ]
        },
        {"09_collapse": {"test-mutual-information"}},
    ),
}


def notebook_path(kind: str, assignment: str) -> Path:
    return COURSE / kind / assignment / f"{assignment}.ipynb"


def solution_text(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in MARKERS)


def answered(assignment: str, mistake: str | None = None):
    """The released notebook with every answer filled in (and ``mistake`` planted)."""
    source = nbformat.read(notebook_path("source", assignment), as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: solution_text(c.source)
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    edits = MISTAKES[mistake].edits.get(assignment, []) if mistake else []
    for cell_id, old, new in edits:
        assert answers[cell_id].count(old) == 1, f"{mistake}: {old!r} not once in {cell_id}"
        answers[cell_id] = answers[cell_id].replace(old, new)
    notebook = nbformat.read(notebook_path("release", assignment), as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return notebook


def write_submissions(folder: Path, students: dict[str, list[str]]) -> None:
    """``students``: name -> assignments. ``solution`` answers all, ``blank`` hands in the
    released notebooks as they are, a name from MISTAKES plants that mistake."""
    for student, assignments in students.items():
        for assignment in assignments:
            target = folder / student / assignment / f"{assignment}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            if student == "blank":
                notebook = nbformat.read(notebook_path("release", assignment), as_version=4)
            else:
                notebook = answered(assignment, None if student == "solution" else student)
            nbformat.write(notebook, target)
