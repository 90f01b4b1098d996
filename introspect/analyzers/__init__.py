"""The built-in analyzers, grouped in modules by what they need.

Each module lists its analyzers in ``ANALYZERS``; this tuple is the single place that says
which modules are built in. Importing these modules does not import torch.
"""

from introspect.analyzers import activations, animations, dynamics, gradients, images, kernels, predictions, sanity, training, weights

BUILTINS = (
    *weights.ANALYZERS,
    *activations.ANALYZERS,
    *kernels.ANALYZERS,
    *predictions.ANALYZERS,
    *training.ANALYZERS,
    *dynamics.ANALYZERS,
    *images.ANALYZERS,
    *animations.ANALYZERS,
    *gradients.ANALYZERS,
    *sanity.ANALYZERS,
)
