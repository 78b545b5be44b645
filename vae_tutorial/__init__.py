"""vae_tutorial: the tested building blocks of the vae-tutorial notebook series.

Every public function says which notebook teaches it. Start with ``notebooks/00_index.ipynb``.
"""

from vae_tutorial.startup import check_versions, import_tensorflow_quietly

# TensorFlow's C++ start-up notices would bury the first lines a learner should read.
_tf = import_tensorflow_quietly()
check_versions(_tf.__version__, _tf.keras.__version__)

from vae_tutorial.environment import quick_mode  # noqa: E402
from vae_tutorial.resources import peak_memory_mb, run_summary  # noqa: E402

# -- losses, models, training step, evaluation --
from vae_tutorial.evaluation import (  # noqa: E402
    evaluate_elbo,
    evaluate_iwae,
    iwae_bound,
)
from vae_tutorial.diagnostics import (  # noqa: E402
    active_units,
    kl_per_dimension,
    mutual_information,
    posterior_mean_variance,
)
from vae_tutorial.collapse import free_bits_kl, kl_divergence_per_dimension  # noqa: E402
from vae_tutorial.likelihoods import (  # noqa: E402
    LIKELIHOODS,
    bits_per_dim,
    continuous_bernoulli_log_normalizer,
    discretized_logistic_log_prob,
    get_likelihood,
)
from vae_tutorial.losses import (  # noqa: E402
    bernoulli_log_likelihood,
    gaussian_log_density,
    kl_divergence,
    negative_elbo_per_example,
    negative_elbo_terms,
    reparameterize,
    vae_loss,
)
from vae_tutorial.models import VAE, Decoder, Encoder  # noqa: E402
from vae_tutorial.convolutional import ConvDecoder, ConvEncoder, ConvVAE  # noqa: E402
from vae_tutorial.conditional import ConditionalVAE  # noqa: E402
from vae_tutorial.quantizer import (  # noqa: E402
    VectorQuantizer,
    codebook_loss,
    commitment_loss,
    nearest_codes,
    straight_through,
)
from vae_tutorial.vqvae import VQVAE, codebook_usage, evaluate_vq_elbo, vq_step_terms  # noqa: E402
from vae_tutorial.pixelcnn import (  # noqa: E402
    MaskedConv2D,
    PixelCNNPrior,
    causal_mask,
    train_prior,
)
from vae_tutorial.hierarchical import (  # noqa: E402
    Gaussian,
    HierarchicalVAE,
    evaluate_hierarchical_elbo,
    gaussian_kl_per_dimension,
    hierarchical_elbo_terms,
    hierarchical_iwae_bound,
    hierarchical_step_terms,
    precision_weighted,
)
from vae_tutorial.step import train_step  # noqa: E402
from vae_tutorial.iwae import gradient_snr, iwae_loss, iwae_step_terms  # noqa: E402
from vae_tutorial.priors import (  # noqa: E402
    PRIORS,
    MixturePrior,
    StandardNormalPrior,
    VampPrior,
    get_prior,
    monte_carlo_kl,
)
from vae_tutorial.prior_elbo import evaluate_prior_elbo, prior_elbo_step_terms  # noqa: E402

# -- out-of-distribution scores --
from vae_tutorial.ood import (  # noqa: E402
    TypicalityResult,
    auroc,
    auroc_interval,
    complexity_corrected_scores,
    compressed_bits,
    likelihood_ratio_scores,
    negative_log_likelihood_scores,
    ood_table,
    perturb_images,
    reconstruction_probability_scores,
    typicality_from_scores,
    typicality_test,
)

# -- data --
from vae_tutorial.data import (  # noqa: E402
    BINARIZE_MODES,
    DataError,
    ImageData,
    binarize_images,
    load_dataset,
    make_batches,
    num_batches,
    read_idx,
)

# -- training loop --
from vae_tutorial.checkpoints import restore_run  # noqa: E402
from vae_tutorial.model_config import ModelConfig  # noqa: E402
from vae_tutorial.training import NonFiniteLossError, fit, kl_warmup_beta  # noqa: E402
from vae_tutorial.training_config import TrainingConfig  # noqa: E402

# -- plotting --
from vae_tutorial.explorer import LatentExplorer  # noqa: E402
from vae_tutorial.plotting import (  # noqa: E402
    manifold_grid,
    pca_project,
    plot_history,
    plot_interpolation,
    plot_latent_scatter,
    plot_manifold,
    plot_reconstructions,
    plot_class_samples,
    plot_samples,
)

__version__ = "0.1.0"
