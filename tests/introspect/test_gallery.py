"""write_gallery: manifest contents, escaping, safe file names, atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from introspect import Artifact, Needs, analyzer
from introspect.api import analyze
from introspect.errors import GalleryError
from introspect.gallery import rerender, write_gallery
from introspect.plotting import new_figure
from introspect.registry import Registry
from introspect.runner import run_analyzers
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import dense_image_subject

HOSTILE = '<img src=x onerror="alert(1)">'


@analyzer(needs=Needs.WEIGHTS)
def hostile_names(subject, /):
    """Draws one figure whose name, layer and caption carry markup and a path."""
    return [
        Artifact(name="../../escape", caption=f"caption {HOSTILE}", layer=f"layer {HOSTILE}", figure=new_figure(2, 2)),
        Artifact(name="frames", caption="an animation", frames=[torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()] * 3),
        Artifact(name="table", caption="a table", table=[{"layer": HOSTILE, "count": 1234}]),
    ]


def hostile_subject() -> Subject:
    base = dense_image_subject()
    task = Task(kind="classification", input_shape=(64,), class_names=(HOSTILE,), dataset=HOSTILE)
    return Subject(weights={f"{HOSTILE}.weight": torch.ones(2, 2)}, task=task, metadata={"architecture": HOSTILE, "metrics": {HOSTILE: 0.5}}, history=base.history)


def test_manifest_lists_every_analyzer_with_status_and_figures(tmp_path: Path) -> None:
    subject = dense_image_subject()
    registry = Registry.default(load_plugins=False)
    report = analyze(subject, out_dir=tmp_path / "g", registry=registry)
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert {"torch", "matplotlib", "numpy"} <= set(manifest["libraries"])
    entries = {entry["name"]: entry for entry in manifest["analyzers"]}
    assert set(entries) == {spec.name for spec in registry}
    for result in report.results:
        entry = entries[result.name]
        assert entry["status"] == result.status and entry["reason"] == result.reason
        assert len(entry["figures"]) == len(result.artifacts)
        for figure in entry["figures"]:
            if figure["file"]:
                assert (tmp_path / "g" / figure["file"]).stat().st_size > 0
    assert report.index_path == tmp_path / "g" / "index.html"


def test_checkpoint_strings_are_escaped_and_file_names_stay_inside(tmp_path: Path) -> None:
    subject = hostile_subject()
    spec = spec_of(hostile_names)
    results = run_analyzers(subject, [spec])
    index = write_gallery(subject, [spec], results, tmp_path / "g")
    html = index.read_text()
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=" in html
    files = sorted(p.relative_to(tmp_path / "g").as_posix() for p in (tmp_path / "g").rglob("*") if p.is_file())
    assert files == ["figures/hostile_names-01-escape.png", "figures/hostile_names-02-frames.gif", "index.html", "manifest.json"]
    assert not list(tmp_path.glob("escape*"))


def test_existing_folder_needs_force_and_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "g"
    subject = dense_image_subject()
    spec = spec_of(hostile_names)
    write_gallery(subject, [spec], run_analyzers(subject, [spec]), target)
    with pytest.raises(GalleryError, match="--force"):
        write_gallery(subject, [], [], target)
    write_gallery(subject, [], [], target, force=True)
    assert not (target / "figures").exists() and (target / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def test_a_crash_while_writing_keeps_the_previous_gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "g"
    subject = dense_image_subject()
    write_gallery(subject, [], [], target)
    (target / "index.html").write_text("previous")
    spec = spec_of(hostile_names)
    results = run_analyzers(subject, [spec])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("introspect.gallery.write_manifest_and_page", crash)
    with pytest.raises(KeyboardInterrupt):
        write_gallery(subject, [spec], results, target, force=True)
    assert (target / "index.html").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def test_page_rerenders_identically_from_the_manifest_alone(tmp_path: Path) -> None:
    analyze(dense_image_subject(), out_dir=tmp_path / "g", registry=Registry.default(load_plugins=False))
    first = (tmp_path / "g" / "index.html").read_text()
    (tmp_path / "g" / "index.html").unlink()
    rerender(tmp_path / "g")
    assert (tmp_path / "g" / "index.html").read_text() == first


def test_skipped_and_failed_analyzers_are_shown_with_reasons(tmp_path: Path) -> None:
    subject = Subject(weights={"w": torch.ones(2)}, model_note="weights only here")
    report = analyze(subject, out_dir=tmp_path / "g", registry=Registry.default(load_plugins=False))
    html = (tmp_path / "g" / "index.html").read_text()
    assert report.result("activations").status == "skipped"
    assert "Skipped: weights only here" in html


def test_gif_frames_round_trip_through_one_shared_palette(tmp_path: Path) -> None:
    import imageio.v3 as iio
    import numpy as np

    from introspect.gallery import write_gif

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(12, 3), dtype=np.uint8)
    frames = []
    for index in range(30):
        frame = np.full((40, 60, 3), 255, dtype=np.uint8)
        frame[10:20, index : index + 10] = colours[index % 12]
        frames.append(frame)
    write_gif(frames, tmp_path / "a.gif", fps=10)
    read = iio.imread(tmp_path / "a.gif", index=None)[..., :3]
    assert read.shape == (30, 40, 60, 3)
    # 13 distinct colours fit any 256-colour palette exactly.
    np.testing.assert_array_equal(read, np.stack(frames))
