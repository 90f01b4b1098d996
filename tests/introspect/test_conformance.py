"""Every registered analyzer passes introspect.testing.check_analyzer on every tiny subject."""

from __future__ import annotations

import pytest

from introspect.registry import Registry
from introspect.testing import all_test_subjects, check_analyzer

SPECS = list(Registry.default(load_plugins=False))


@pytest.fixture(scope="module")
def subjects():  # noqa: ANN201
    return all_test_subjects()


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_analyzer_conforms(spec, subjects) -> None:  # noqa: ANN001
    statuses = check_analyzer(spec, subjects)  # raises on the first misbehaviour
    assert any(status == "ok" for status in statuses.values()), f"{spec.name} never ran on any test subject: {statuses}"


def test_check_analyzer_catches_a_pyplot_leak() -> None:
    from introspect import Artifact, Needs, analyzer

    @analyzer(needs=Needs.WEIGHTS)
    def leaky(subject, /):
        """Uses pyplot, which keeps every figure alive."""
        import matplotlib.pyplot as plt

        figure = plt.figure()
        return [Artifact(name="x", caption="x", figure=figure)]

    with pytest.raises(AssertionError, match="left pyplot figures open"):
        check_analyzer(leaky)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_check_analyzer_catches_nondeterminism() -> None:
    import random

    from introspect import Artifact, Needs, analyzer

    @analyzer(needs=Needs.WEIGHTS)
    def unseeded(subject, /):
        """Numbers change on every call."""
        return [Artifact(name="x", caption="x", table=[{"v": 1}], summary={"value": random.random()})]

    with pytest.raises(AssertionError, match="different numbers for the same seed"):
        check_analyzer(unseeded)
