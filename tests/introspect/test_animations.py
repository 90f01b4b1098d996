"""activation_gifs and the numpy frame painter against hand computations."""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from introspect.analyzers import _raster as raster
from introspect.analyzers.animations import activation_gifs, paint_sweep_frames, ping_pong
from introspect.runner import run_one
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import (
    all_test_subjects,
    check_analyzer,
    conv_image_subject,
    dense_image_subject,
    scalar_regression_subject,
)


def _run(subject: Subject, **options: object):
    result = run_one(subject, spec_of(activation_gifs), options)
    assert result.status == "ok", result.reason + result.traceback
    return {artifact.name: artifact for artifact in result.artifacts}


def _hand_backdrop() -> raster.Backdrop:
    """A 300x400 figure with one axes at (0.1, 0.1, 0.8, 0.8): x in [0, 10], y in [0, 1]."""
    figure = Figure(figsize=(4, 3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.1, 0.1, 0.8, 0.8))
    axes.set_xlim(0, 10)
    axes.set_ylim(0, 1)
    strip = figure.add_axes((0.1, 0.0, 0.8, 0.05))
    return raster.render_backdrop(figure, {"curve": axes, "strip": strip})


def _centroid(frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float]:
    rows, columns = np.nonzero((frame == colour).all(axis=2))
    return rows.mean(), columns.mean()


def test_backdrop_boxes_and_transforms_match_the_axes_position() -> None:
    backdrop = _hand_backdrop()
    assert backdrop.image.shape == (300, 400, 3)
    assert backdrop.boxes["curve"] == raster.PixelBox(top=30, bottom=270, left=40, right=360)
    rows, columns = backdrop.to_pixels("curve", np.array([0.0, 5.0, 10.0]), np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(rows, [270, 150, 30])
    np.testing.assert_allclose(columns, [40, 200, 360])


def test_sweep_frames_put_the_marker_at_the_output_and_colour_the_strip() -> None:
    backdrop = _hand_backdrop()
    colours = {"strip": np.array([[[[10, 20, 30], [40, 50, 60]]], [[[70, 80, 90], [1, 2, 3]]]], dtype=np.uint8)}
    frames = paint_sweep_frames(backdrop, np.array([2.5, 7.5]), np.array([[0.25], [0.75]]), colours)
    # x = 2.5 → column 40 + 2.5 / 10 * 320 = 120; y = 0.25 → row 270 - 0.25 * 240 = 210.
    for frame, expected in zip(frames, [(210, 120), (90, 280)]):
        np.testing.assert_allclose(_centroid(frame, raster.RED), expected, atol=0.5)
        assert (frame[30:270, expected[1]] != 255).any(axis=1).all()  # the grey line spans the box
    box = backdrop.boxes["strip"]
    middle = (box.top + box.bottom) // 2
    np.testing.assert_array_equal(frames[0][middle, box.left + 5], [10, 20, 30])
    np.testing.assert_array_equal(frames[1][middle, box.right - 5], [1, 2, 3])


def test_bars_and_polyline_are_painted_at_hand_computed_pixels() -> None:
    backdrop = _hand_backdrop()
    frame = backdrop.image.copy()
    raster.paint_bars(frame, backdrop, "curve", np.array([0.5, 0.25]))
    bar = (frame == raster.BLUE).all(axis=2)
    # Bar 0 sits at x in [-0.35, 0.35], clipped at the box's left edge; 0.5 of 240 rows is 120.
    assert bar[:, 40:51].any(axis=1).sum() == 120 and bar[150:270, 45].all()
    assert bar[:, 55:90].any(axis=1).sum() == 60 and bar[210:270, 72].all() and not bar[:, 84:].any()
    line = backdrop.image.copy()
    rows, columns = backdrop.to_pixels("curve", np.array([1.0, 9.0]), np.array([0.5, 0.5]))
    raster.paint_polyline(line, rows, columns, raster.RED, backdrop.boxes["curve"], width=2)
    painted_rows, painted_columns = np.nonzero((line == raster.RED).all(axis=2))
    # x = 1 → column 72, x = 9 → column 328, y = 0.5 → row 150; two pixels thick.
    assert set(painted_rows) == {150, 151} and painted_columns.min() == 72 and painted_columns.max() == 329
    assert len(set(painted_columns)) == painted_columns.max() - painted_columns.min() + 1


def test_colour_lookup_matches_matplotlib() -> None:
    from matplotlib import colormaps

    table = raster.colour_table("viridis")
    colours = raster.apply_colours(np.array([0.0, 1.0, 2.0, np.nan]), 0.0, 2.0, table)
    expected = (colormaps["viridis"]([0.0, 128 / 255, 1.0])[:, :3] * 255).round()
    np.testing.assert_array_equal(colours[:3], expected)
    np.testing.assert_array_equal(colours[3], [255, 255, 255])


def test_ping_pong_goes_there_and_back() -> None:
    weights = ping_pong(120)
    assert len(weights) == 120 and weights[0] == 0 and weights[60] == 1 and weights[61] == weights[59]


def test_scalar_sweep_frames_follow_the_network_output() -> None:
    subject = scalar_regression_subject()
    artifacts = _run(subject)
    sweep = artifacts["sweep"]
    assert len(sweep.frames) == 120 and all(frame.shape == sweep.frames[0].shape for frame in sweep.frames)
    assert sweep.frames[0].dtype == np.uint8 and sweep.frames[0].shape[1] <= 480
    x = np.linspace(-5, 5, 120)
    with torch.no_grad():
        outputs = subject.model(torch.tensor(x, dtype=torch.float32).unsqueeze(1)).double().numpy()
        hidden = torch.sigmoid(subject.model[0](torch.tensor(x, dtype=torch.float32).unsqueeze(1))).double().numpy()
    np.testing.assert_allclose(sweep.data["output"], outputs, atol=1e-6)
    np.testing.assert_allclose(sweep.data["layers"]["1"], hidden, atol=1e-6)
    # The marker moves at a constant pace in x and up or down with the output.
    centroids = np.array([_centroid(frame, raster.RED) for frame in sweep.frames[5:-5]])
    assert np.ptp(np.diff(centroids[:, 1])) <= 1.5
    slope, intercept = np.polyfit(outputs[5:-5, 0], centroids[:, 0], 1)
    assert slope < 0 and np.abs(centroids[:, 0] - (slope * outputs[5:-5, 0] + intercept)).max() <= 1.0


def test_snapshot_frames_show_each_epoch_and_are_capped() -> None:
    subject = scalar_regression_subject()
    training = _run(subject, num_frames=10)["training"]
    order = np.argsort(subject.snapshots["inputs"].numpy())
    assert len(training.frames) == 3
    np.testing.assert_allclose(training.data["outputs"], subject.snapshots["outputs"].double().numpy()[:, order])
    timeline = [_centroid(frame, raster.RED)[1] for frame in training.frames]
    assert timeline[0] < timeline[1] < timeline[2]
    epochs = np.arange(1, 201)
    curves = torch.outer(torch.linspace(0, 1, 200), torch.sin(subject.snapshots["inputs"]))
    many = Subject.from_model(
        subject.model,
        subject.probe_inputs,
        subject.probe_labels,
        task=subject.task,
        snapshots={"epochs": epochs.tolist(), "inputs": subject.snapshots["inputs"], "outputs": curves},
    )
    capped = _run(many, num_frames=50)
    assert len(capped["training"].frames) == 50 and "50 of 200 snapshots" in capped["training"].caption
    assert len(capped["sweep"].frames) == 50


def test_dense_morph_bars_are_the_softmax_of_the_blended_inputs() -> None:
    subject = dense_image_subject()
    morph = _run(subject, num_morph_frames=40)["morph"]
    first, second = morph.data["pair"]
    assert subject.probe_labels[first] != subject.probe_labels[second]
    weights = morph.data["weights"]
    blended = (1 - torch.tensor(weights, dtype=torch.float32)[:, None]) * subject.probe_inputs[first] + torch.tensor(
        weights, dtype=torch.float32
    )[:, None] * subject.probe_inputs[second]
    with torch.no_grad():
        probabilities = torch.softmax(subject.model(blended), dim=1).double().numpy()
        hidden = torch.tanh(subject.model[1](subject.model[0](blended))).double().numpy()
    np.testing.assert_allclose(morph.data["bars"], probabilities[:, morph.data["bar_indices"]], atol=1e-6)
    np.testing.assert_allclose(morph.data["layers"]["2"], hidden, atol=1e-6)
    assert len(morph.frames) == 40 and weights.max() == 1


def test_conv_morph_shows_the_feature_maps_of_the_blend() -> None:
    subject = conv_image_subject(channels=3)
    morph = _run(subject)["morph"]
    assert morph.layer == "4" and len(morph.frames) == 60
    first, second = morph.data["pair"]
    weights = torch.tensor(morph.data["weights"], dtype=torch.float32).reshape(-1, 1, 1, 1)
    blended = (1 - weights) * subject.probe_inputs[first] + weights * subject.probe_inputs[second]
    subject.model.eval()
    with torch.no_grad():
        maps = subject.model[:5](blended).double().numpy()
    np.testing.assert_allclose(morph.data["maps"], maps[:, morph.data["channels"]], atol=1e-5)


def test_gifs_skip_inputs_that_are_neither_scalar_nor_image() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    subject = Subject.from_model(model, torch.rand(4, 5), task=Task(input_shape=(5,)))
    result = run_one(subject, spec_of(activation_gifs))
    assert result.status == "skipped" and "neither" in result.reason


def test_conformance() -> None:
    # The dense and grayscale subjects are covered above; each run here draws 240 frames.
    subjects = {
        name: subject
        for name, subject in all_test_subjects().items()
        if name in ("scalar_regression", "conv_rgb", "weights_only")
    }
    assert check_analyzer(activation_gifs, subjects) == {
        "scalar_regression": "ok",
        "conv_rgb": "ok",
        "weights_only": "skipped",
    }


def test_resnet18_morph_is_capped() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    inputs = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    task = Task(kind="classification", input_shape=(3, 32, 32), image_shape=(3, 32, 32))
    morph = _run(Subject.from_model(model, inputs, torch.arange(4), task=task), num_morph_frames=500)["morph"]
    assert len(morph.frames) == 120 and morph.frames[0].shape[1] <= 480
    assert morph.layer == "layer1.1.relu" and morph.data["maps"].shape == (120, 16, 8, 8)
    assert "16 strongest of 64 channels" in morph.caption
