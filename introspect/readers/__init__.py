"""Readers that take a file apart without running anything from it, within a budget.

- :mod:`~introspect.readers.archive`: what a file is, from its content; bounded zip records.
- :mod:`~introspect.readers.pickle_scan`: a pickle read into inert stubs.
- :mod:`~introspect.readers.tensors`: tensor views checked against their storages.
- :mod:`~introspect.readers.torchfile`: ``torch.save`` files.
- :mod:`~introspect.readers.torchscript`: a TorchScript archive's weights.
- :mod:`~introspect.readers.exported`: ``torch.export`` archives.
"""
