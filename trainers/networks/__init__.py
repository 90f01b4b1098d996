"""One file per network, read top to bottom: config, model, data, training defaults, search space, record.

Each file ends in a :class:`trainers.network.Network` record (``NETWORK``, or ``NETA1``/``NETA2``
where one file holds two architectures of one family). Adding a network takes its file and one
line in pyproject's ``[project.entry-points."introspect.architectures"]`` table::

    mynet = "trainers.networks.mynet:NETWORK"

after which ``introspect train mynet`` trains it, ``introspect`` rebuilds its checkpoints, and
``tests/trainers/test_networks.py`` tests it.
"""
