"""trainers: train the course's networks and write introspect checkpoints.

Each network is one file in ``trainers/networks/`` (config dataclass, model, data, training
defaults, search space) ending in one :class:`~trainers.network.Network` record, which the
entry-point group ``introspect.architectures`` names; the record is also the factory
``introspect`` rebuilds checkpoints with. ``trainers.catalog`` reads the list of networks from
those entry points; ``trainers.training.train`` and ``trainers.search.search`` train and search
any of them; ``trainers.loop`` is the one training loop; ``trainers.data`` holds the data sets in
memory as tensors; ``trainers.settings`` turns the command line (``--set key=value``) into configs.
"""
