"""The trust checks' claims on a trained LeNet-5 (the quick recipe on the offline MNIST subset).

The issue's numbers that must hold, and the README's results table: the random-map control does
no better than any method on deletion AUC, Saliency passes the MPRT against the random-pair
baseline, and the permuted-label twin's maps correlate less with the trained network's than a
second seed's do. Each is a comparison of two measured numbers, with the margin printed on failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained_lenet5(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from introspect.loading import load_checkpoint
    from trainers.catalog import RunSettings, train

    path = train("lenet5", RunSettings(quick=True), tmp_path_factory.mktemp("lenet5") / "lenet5.pt")
    return load_checkpoint(Path(path))


@pytest.fixture(scope="module")
def scorecard(trained_lenet5):  # noqa: ANN001, ANN201
    from introspect.analyzers.attribution_scorecard import attribution_scorecard

    (artifact,) = attribution_scorecard(trained_lenet5)
    return artifact


@pytest.mark.slow
def test_the_random_map_deletes_no_better_than_any_method(scorecard) -> None:  # noqa: ANN001
    deletion = {name: float(np.mean(values)) for name, values in scorecard.data["deletion"].items()}
    methods = {name: value for name, value in deletion.items() if name not in ("random", "blurred")}
    assert len(methods) == 6  # Saliency, IG, SmoothGrad, Guided Backprop, Grad-CAM, occlusion
    worst = max(methods, key=methods.get)
    assert deletion["random"] > methods[worst], f"random {deletion['random']:.3f} against {worst} {methods[worst]:.3f}"


@pytest.mark.slow
def test_saliency_passes_the_mprt_against_the_random_pair_baseline(scorecard) -> None:  # noqa: ANN001
    from introspect.analyzers._faithfulness import baseline_band

    randomized = float(np.nanmean(scorecard.data["mprt_full"]["saliency"]))
    mean, spread = baseline_band(scorecard.data["baseline"]["saliency"])
    margin = f"fully randomized {randomized:.3f} against the baseline {mean:.3f} + {spread:.3f}"
    assert randomized <= mean + spread, margin
    saliency_row = next(row for row in scorecard.table if row["method"] == "Saliency")
    assert saliency_row["MPRT passes"] == "yes"  # the table says what the numbers say


@pytest.mark.slow
def test_the_permuted_label_twin_explains_less_like_the_network_than_a_second_seed(trained_lenet5) -> None:  # noqa: ANN001
    from trainers.trust import data_randomization

    (artifact,) = data_randomization(trained_lenet5, quick=True)
    twins = artifact.summary
    shuffled, seed = twins["random_labels_spearman"]["mean"], twins["second_seed_spearman"]["mean"]
    assert shuffled < seed, f"permuted labels {shuffled:.3f} against a second seed {seed:.3f}"
    assert twins["passes"] is True
    assert twins["num_images"] == 64
