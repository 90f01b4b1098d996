"""trainers: train the course's networks and write introspect checkpoints.

``trainers.catalog`` lists the trainable networks (CLI names) and trains one by name;
``trainers.loop`` is the one training loop they share; ``trainers.data`` holds the data sets in
memory as tensors. Each network lives in its own module with its config dataclass beside it and
a ``build(config) -> nn.Module`` registered under the entry-point group
``introspect.architectures``, so ``introspect`` rebuilds it from a checkpoint.
"""
