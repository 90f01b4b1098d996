"""Interactive views: the sprite sheet and the manifest's numbers, checked against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from introspect.api import analyze
from introspect.report.interactive import scatter_view, shrunk, sprite_sheet, write_interactive
from introspect.report.layout import foreign_entry
from introspect.testing import all_test_subjects


def test_sprite_sheet_places_each_thumbnail_in_its_cell_row_by_row() -> None:
    images = np.random.default_rng(0).random((7, 5, 4, 3))
    sheet, columns, cell = sprite_sheet(images)
    assert (columns, cell, sheet.shape) == (3, (5, 4), (15, 12, 3))  # 3 columns, 3 rows, last row short
    for position, image in enumerate(images):
        row, column = divmod(position, columns)
        expected = np.round(image * 255).astype(np.uint8)
        np.testing.assert_array_equal(sheet[row * 5 : row * 5 + 5, column * 4 : column * 4 + 4], expected)
    assert (sheet[10:, 4:] == 255).all()  # the cells after the last thumbnail are blank


def test_large_images_shrink_by_area_averaging_to_the_limit() -> None:
    images = np.random.default_rng(1).random((2, 224, 200, 3))
    small = shrunk(images, max_side=48)
    assert small.shape == (2, 44, 40, 3)  # factor 5: no side over 48
    np.testing.assert_allclose(small[1, 3, 7], images[1, 15:20, 35:40].mean(axis=(0, 1)))


def test_points_are_scaled_into_the_unit_square_keeping_the_aspect() -> None:
    points = np.array([[0.0, 0.0], [4.0, 1.0], [2.0, 2.0]])
    view = scatter_view([("PCA", points)], np.array([0, 1, -1]), ["a", "b"], ["#000", "#fff"], indices=np.arange(3))
    np.testing.assert_allclose(view["views"][0]["points"], [[0, 0.25], [1, 0.5], [0.5, 0.75]])


def test_the_manifest_keeps_the_numbers_and_names_the_sprite_sheet(tmp_path: Path) -> None:
    thumbnails = np.random.default_rng(2).random((5, 6, 6, 3))
    view = scatter_view(
        [("t-SNE", np.arange(10.0).reshape(5, 2))], np.arange(5) % 2, ["x", "y"], ["#111", "#222"],
        indices=np.array([3, 9, 11, 12, 40]), thumbnails=thumbnails,
    )  # fmt: skip
    entry = write_interactive(view, tmp_path, "stem")
    assert json.loads(json.dumps(entry)) == entry  # JSON-ready
    assert entry["sprites"] == {"file": "stem-sprites.png", "columns": 3, "cell": [6, 6]}
    written = np.asarray(Image.open(tmp_path / "stem-sprites.png"))
    np.testing.assert_array_equal(written, sprite_sheet(thumbnails)[0])
    assert entry["indices"] == [3, 9, 11, 12, 40] and entry["labels"] == [0, 1, 0, 1, 0]


def test_embedding_projection_writes_its_view_and_a_rerun_replaces_the_gallery(tmp_path: Path) -> None:
    subject = all_test_subjects()["conv_rgb"]
    out = tmp_path / "g"
    report = analyze(subject, out_dir=out, analyzers=["embedding_projection"])
    artifact = report.result("embedding_projection").artifacts[0]
    figure = json.loads((out / "manifest.json").read_text())["analyzers"][0]["figures"][0]
    view = figure["interactive"]
    assert [panel["title"] for panel in view["views"]] == ["PCA", "t-SNE"]
    assert view["indices"] == artifact.data["indices"].tolist() and len(view["labels"]) == 40
    for panel, key in zip(view["views"], ("pca", "tsne")):
        raw = artifact.data[key]
        span = (raw.max(axis=0) - raw.min(axis=0)).max()
        # the same picture: the manifest's points are the projection moved and scaled alike on both axes
        np.testing.assert_allclose(np.diff(panel["points"], axis=0), np.diff(raw, axis=0) / span, atol=1e-4)
    assert (out / "figures" / view["sprites"]["file"]).is_file()
    assert foreign_entry(out) is None  # the sprite sheet is accounted for, so --force may replace the folder
    analyze(subject, out_dir=out, analyzers=["embedding_projection"], force=True)
