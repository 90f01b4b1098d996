"""introspect's benchmark suite: ratios measured side by side in one run, against targets.

Run ``python -m benchmarks`` (``--quick`` for a tiny smoke run, ``--json PATH`` to keep the
numbers). Each row times introspect and the plain computation (or the tool users would
otherwise use) alternately in the same process run and reports the median; see
``benchmarks/README.md`` for the rows, their targets and the last full run.

Importing this package imports no torch, so the process rows can measure the CLI cold.
"""
