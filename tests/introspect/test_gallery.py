"""write_gallery: manifest contents, escaping, safe file names, atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from introspect import Artifact, Needs, analyzer
from introspect.api import analyze
from introspect.errors import GalleryError
from introspect.plotting import new_figure
from introspect.registry import Registry
from introspect.report import rerender, write_gallery
from introspect.report.files import write_png
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
    return Subject(
        weights={f"{HOSTILE}.weight": torch.ones(2, 2)},
        task=task,
        metadata={"architecture": HOSTILE, "metrics": {HOSTILE: 0.5}},
        history=base.history,
    )


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
    assert files == [
        "figures/hostile_names-01-escape.png",
        "figures/hostile_names-02-frames.gif",
        "index.html",
        "manifest.json",
    ]
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

    monkeypatch.setattr("introspect.report.files.write_manifest_and_page", crash)
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

    from introspect.report.files import write_gif

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


# --- the streaming writer, the manifest envelope, the renderer and the old import paths -----------


def test_gallery_writer_streams_pages_and_comparisons_into_one_collection(tmp_path: Path) -> None:
    from introspect.compare import compare_subjects
    from introspect.report import GalleryWriter
    from introspect.runner import run_one

    subjects = [dense_image_subject(seed) for seed in (0, 1)]
    spec = spec_of(hostile_names)
    seen: list[str] = []

    def streamed(subject: Subject):
        result = run_one(subject, spec)
        seen.append(f"ran {len(seen)}")
        yield result

    with GalleryWriter(tmp_path / "site") as writer:
        for title, subject in zip(("a", "a"), subjects):
            entry = writer.add_page(title, subject, [spec], streamed(subject))
            assert entry["counts"] == {"ok": 1, "skipped": 0, "failed": 0}
        link = writer.add_comparison(compare_subjects([("a", subjects[0]), ("a-2", subjects[1])]), title="a vs a")
        assert not (tmp_path / "site").exists()  # in place only once the block ends
    assert [page["slug"] for page in writer.pages] == ["a", "a-2"] and seen == ["ran 0", "ran 1"]
    index = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert index["kind"] == "collection" and index["links"] == [link]
    assert link["href"] == "comparisons/a-vs-a/index.html"
    comparison = json.loads((tmp_path / "site" / "comparisons" / "a-vs-a" / "manifest.json").read_text())
    assert [c["link"] for c in comparison["checkpoints"]] == ["../../a/index.html", None]  # "a (2)" has no page
    page = json.loads((tmp_path / "site" / "a-2" / "manifest.json").read_text())
    assert page["kind"] == "checkpoint" and page["parent_index"] == "../index.html"
    assert (tmp_path / "site" / "a-2" / "figures" / "hostile_names-01-escape.png").stat().st_size > 0
    assert writer.index_path.read_text().count('href="a-2/index.html"') == 1


def test_gallery_writer_releases_figures_once_written_unless_kept(tmp_path: Path) -> None:
    from introspect.artifacts import AnalyzerResult
    from introspect.report import GalleryWriter

    def result() -> AnalyzerResult:
        figure = new_figure(2, 2)
        figure.add_subplot().plot([0, 1], [1, 0])
        return AnalyzerResult(name="drawn", status="ok", artifacts=(Artifact(name="line", caption="", figure=figure),))

    subject = dense_image_subject()
    released, kept = result(), result()
    with GalleryWriter(tmp_path / "site") as writer:
        writer.add_page("released", subject, [], [released])
        writer.add_page("kept", subject, [], [kept], keep_figures=True)
    assert released.artifacts[0].figure.axes == [] and len(kept.artifacts[0].figure.axes) == 1
    written = [tmp_path / "site" / slug / "figures" / "drawn-01-line.png" for slug in ("released", "kept")]
    pixels = [path.read_bytes() for path in written]
    assert pixels[0] == pixels[1]  # cleared only after it was written


def test_gallery_writer_leaves_nothing_when_its_block_fails(tmp_path: Path) -> None:
    from introspect.report import GalleryWriter

    with pytest.raises(RuntimeError, match="stop"):
        with GalleryWriter(tmp_path / "site") as writer:
            writer.add_page("a", dense_image_subject(), [], [])
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="inside its with block"):
        writer.add_page("late", dense_image_subject(), [], [])


def test_every_manifest_has_one_envelope_and_renders_by_its_kind(tmp_path: Path) -> None:
    from introspect.report.manifest import KINDS, envelope, manifest_kind
    from introspect.report.render import render

    assert list(envelope("comparison"))[:3] == ["generator", "schema_version", "kind"]
    with pytest.raises(ValueError, match="unknown kind"):
        envelope("notebook")
    write_gallery(dense_image_subject(), [], [], tmp_path / "g")
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["generator"] == "introspect" and manifest_kind(manifest) == "checkpoint" in KINDS
    legacy = {key: value for key, value in manifest.items() if key != "kind"}  # written before the field
    assert manifest_kind(legacy) == "checkpoint" and render(legacy) == render(manifest)
    assert manifest_kind({"pages": []}) == "collection"


def test_templates_extend_one_base_with_the_shared_styles() -> None:
    from introspect.report.render import TEMPLATE_DIR, TEMPLATES

    base = (TEMPLATE_DIR / "base.html.j2").read_text()
    assert "dialog.viewer" in base and "box-sizing" in base
    for template in TEMPLATES.values():
        text = (TEMPLATE_DIR / template).read_text()
        assert text.startswith('{% extends "base.html.j2" %}') and "<style>" not in text and "dialog.viewer" not in text


def test_old_import_paths_still_work() -> None:
    import introspect
    import introspect.compare as compare
    import introspect.gallery as gallery
    import introspect.html as html
    import introspect.manifest as manifest
    import introspect.outdir as outdir
    import introspect.report as report
    from introspect.plotting import new_figure as plotting_new_figure

    assert gallery.write_gallery is report.write_gallery and gallery.write_collection is report.write_collection
    assert gallery.rerender is report.rerender and gallery.check_output_dir is report.check_output_dir
    assert callable(compare.compare_checkpoints) and compare.write_comparison is report.write_comparison
    assert html.render_page is report.render and manifest.plain is introspect.describe.plain
    assert outdir.claim_output_dir is report.claim_output_dir
    assert introspect.GalleryError is GalleryError and introspect.new_figure is plotting_new_figure
    assert {"GalleryError", "new_figure", "GalleryWriter"} <= set(introspect.__all__)


@analyzer(needs=Needs.WEIGHTS)
def always_fails(subject, /):
    """Fails, to show the page's banner."""
    raise RuntimeError("broken on purpose")


def test_failed_analyzers_are_named_in_a_banner_at_the_top(tmp_path: Path) -> None:
    from html.parser import HTMLParser

    subject = Subject(weights={"w": torch.ones(2)})
    specs = [spec_of(always_fails), *Registry.default(load_plugins=False).select(["weight_histograms"])]
    analyze(subject, out_dir=tmp_path / "g", registry=Registry(specs))

    class Banner(HTMLParser):
        inside, text, links = False, "", []

        def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN202
            attributes = dict(attrs)
            self.inside = self.inside or attributes.get("class") == "banner"
            if self.inside and tag == "a":
                self.links.append(attributes["href"])

        def handle_endtag(self, tag):  # noqa: ANN001, ANN202
            self.inside = self.inside and tag != "p"

        def handle_data(self, data):  # noqa: ANN001, ANN202
            self.text += data if self.inside else ""

    banner = Banner()
    banner.feed((tmp_path / "g" / "index.html").read_text())
    assert " ".join(banner.text.split()) == "1 analyzer failed: always_fails. Each section says why."
    assert banner.links == ["#always_fails"]
    quiet = analyze(subject, out_dir=tmp_path / "ok", analyzers=["weight_histograms"])
    assert 'class="banner"' not in quiet.index_path.read_text()


def _plot_with_colour_bar(transparent: bool = False):  # noqa: ANN202
    figure = new_figure(3, 2)
    axes = figure.add_subplot()
    axes.plot([0, 1, 2], [1, 0, 2])
    axes.set_title("a title")
    figure.colorbar(axes.imshow([[0.0, 1.0]]), ax=axes)
    if transparent:
        figure.patch.set_alpha(0.0)
    return figure


def test_write_png_writes_the_pixels_savefig_draws(tmp_path: Path) -> None:
    write_png(_plot_with_colour_bar(), tmp_path / "ours.png")
    _plot_with_colour_bar().savefig(tmp_path / "savefig.png", dpi=100)
    ours, theirs = Image.open(tmp_path / "ours.png"), Image.open(tmp_path / "savefig.png")
    assert ours.mode == "RGB" and ours.size == theirs.size == (300, 200)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs.convert("RGB")))


def test_write_png_keeps_transparency(tmp_path: Path) -> None:
    write_png(_plot_with_colour_bar(transparent=True), tmp_path / "clear.png")
    image = Image.open(tmp_path / "clear.png")
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0
