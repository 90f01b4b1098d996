"""Notebooks: reports and ``show`` display inline as escaped, self-contained HTML, and write no file."""

from __future__ import annotations

import base64
import collections
import io
import json
import re
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

import introspect
from introspect.artifacts import Artifact
from introspect.errors import PluginError
from introspect.options import OptionError
from introspect.plotting import new_figure
from introspect.registry import Registry
from introspect.report import notebook
from introspect.spec import analyzer, spec_of

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"
HOSTILE = "<script>alert('x')</script>"
ANALYZERS = ["weight_histograms", "activations", "model_summary", "grad_cam", "training_curves"]


class Fragment(HTMLParser):
    """What a test needs from the HTML: images, captions, headings with statuses, tables and the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []
        self.captions: list[str] = []
        self.statuses: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.texts: list[str] = []
        self._open: dict[str, list[str]] = {}
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "img":
            self.images.append(attributes)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("figcaption", "h4", "td", "th"):
            self._open[tag] = []
        elif tag == "span" and "h4" in self._open and attributes.get("class", "").startswith("status "):
            self._open["status"] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and "status" in self._open:
            status = "".join(self._open.pop("status"))
            self.statuses.append(("".join(self._open["h4"]).strip(), status))
        elif tag in ("td", "th") and tag in self._open:
            self.tables[-1][-1].append("".join(self._open.pop(tag)))
        elif tag == "figcaption" and tag in self._open:
            self.captions.append("".join(self._open.pop(tag)))
        elif tag == "h4":
            self._open.pop("h4", None)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for tag, parts in self._open.items():
            if tag != "h4" or "status" not in self._open:  # a heading's name, without its status badge
                parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def hostile_cnn() -> nn.Module:
    """A small CNN whose class name and first layer's name are markup."""
    torch.manual_seed(0)
    layers = collections.OrderedDict(
        [
            (HOSTILE, nn.Conv2d(1, 4, 3, padding=1)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(4, 6, 3, stride=2, padding=1)),
            ("relu2", nn.ReLU()),
            ("flatten", nn.Flatten()),
            ("classifier", nn.Linear(6 * 4 * 4, 3)),
        ]
    )
    return type(f"Net{HOSTILE}", (nn.Sequential,), {})(layers)


def probe() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(6) % 3


@pytest.fixture(scope="module")
def report() -> introspect.AnalysisReport:
    inputs, labels = probe()
    return introspect.analyze(hostile_cnn(), inputs, labels, analyzers=ANALYZERS, load_plugins=False)


@pytest.fixture(scope="module")
def fragment(report: introspect.AnalysisReport) -> Fragment:
    return Fragment(report._repr_html_())


def decoded(source: str) -> tuple[str, Image.Image]:
    """The image kind and the image of a ``data:`` URI."""
    match = re.fullmatch(r"data:image/(png|gif);base64,([A-Za-z0-9+/=]+)", source)
    assert match, source[:80]
    return match.group(1), Image.open(io.BytesIO(base64.b64decode(match.group(2))))


def test_the_report_embeds_one_png_per_figure_drawn_at_the_capped_resolution(
    report: introspect.AnalysisReport, fragment: Fragment
) -> None:
    figures = [artifact for result in report.results for artifact in result.artifacts if artifact.kind != "table"]
    assert len(figures) == 1 + 5 + 1 == len(fragment.images)  # histograms, a layer each but Flatten, Grad-CAM
    for artifact, image in zip(figures, fragment.images):
        kind, png = decoded(image["src"])
        width, height = artifact.figure.get_size_inches()
        dpi = min(artifact.figure.dpi, notebook.MAX_DPI, notebook.MAX_SIDE_PIXELS / max(width, height))
        assert kind == "png" and png.size == (round(width * dpi), round(height * dpi))
        assert image["alt"] == artifact.caption


def test_every_caption_and_table_is_shown_with_the_markup_in_names_escaped(
    report: introspect.AnalysisReport, fragment: Fragment
) -> None:
    html = report._repr_html_()
    assert "<script" not in html and html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 3
    artifacts = [artifact for result in report.results for artifact in result.artifacts]
    assert fragment.captions == [f"{a.layer}: {a.caption}" if a.layer else a.caption for a in artifacts]
    assert any(caption.startswith(f"{HOSTILE}: ") for caption in fragment.captions)
    assert f"introspect: Net{HOSTILE}" in fragment.text
    layers = next(a.table for a in report.result("model_summary").artifacts if a.kind == "table")
    header, *rows = fragment.tables[0]
    assert header == [key.replace("_", " ") for key in layers[0]]
    assert [row[0] for row in rows] == [row["layer"] for row in layers] and rows[0][0] == HOSTILE
    assert len(fragment.tables) == sum(artifact.kind == "table" for artifact in artifacts)


def test_each_analyzer_shows_its_status_and_the_reason_it_was_skipped(
    report: introspect.AnalysisReport, fragment: Fragment
) -> None:
    statuses = [(result.name, result.status) for result in report.results]
    assert ("training_curves", "skipped") in statuses and ("grad_cam", "ok") in statuses
    assert fragment.statuses == statuses
    assert f"Skipped: {report.result('training_curves').reason}" in fragment.text
    assert "Probe 6 inputs" in fragment.text and "Parameters 553 (553 trainable)" in fragment.text
    assert sum(parameter.numel() for parameter in report.subject.model.parameters()) == 553


@analyzer
def broken_analyzer(subject: Any, /) -> list[Artifact]:
    """Always fails, with an error of two lines."""
    raise ValueError(f"bad {HOSTILE}\nthe second line of the error")


@analyzer
def flipbook(subject: Any, /, *, num_frames: int = 5) -> list[Artifact]:
    """A stripe moving down, as an animation of a few frames."""
    return [Artifact(name="flip", caption="a stripe moving down", frames=stripes(num_frames), fps=5)]


@analyzer
def wide_figures(subject: Any, /, *, count: int = 3) -> list[Artifact]:
    """Figures far wider than a notebook."""
    artifacts = []
    for index in range(count):
        figure = new_figure(40.0, 2.0, dpi=150)
        figure.add_subplot().plot([0, 1], [0, index])
        artifacts.append(Artifact(name=f"wide-{index}", caption=f"wide figure {index}", figure=figure))
    return artifacts


def stripes(num_frames: int) -> list[np.ndarray]:
    frames = []
    for index in range(num_frames):
        frame = np.zeros((10, 16, 3), dtype=np.uint8)
        frame[index % 10, :, 0] = 255
        frame[:, index, 2] = 200
        frames.append(frame)
    return frames


def custom_report(*names: str) -> introspect.AnalysisReport:
    registry = Registry([spec_of(broken_analyzer), spec_of(flipbook), spec_of(wide_figures)])
    return introspect.analyze(hostile_cnn(), probe()[0], analyzers=list(names), registry=registry)


def test_a_failed_analyzer_shows_the_first_line_of_its_error_escaped() -> None:
    report = custom_report("broken_analyzer")
    html = report._repr_html_()
    assert report.results[0].status == "failed" and "the second line" in report.results[0].reason
    assert Fragment(html).statuses == [("broken_analyzer", "failed")]
    assert f"Failed: ValueError: bad {HOSTILE}" in Fragment(html).text
    assert "the second line" not in html and "<script" not in html


def test_an_animation_is_embedded_as_a_gif_with_every_frame() -> None:
    report = custom_report("flipbook")
    [image] = Fragment(report._repr_html_()).images
    kind, gif = decoded(image["src"])
    assert kind == "gif" and gif.n_frames == 5
    for index, expected in enumerate(stripes(5)):
        gif.seek(index)
        np.testing.assert_array_equal(np.asarray(gif.convert("RGB")), expected)


def test_a_large_animation_shows_its_first_frame_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebook, "MAX_ANIMATION_PIXELS", 10 * 16 * 4)  # four frames' worth
    fragment = Fragment(custom_report("flipbook")._repr_html_())
    [image] = fragment.images
    kind, png = decoded(image["src"])
    assert kind == "png"
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), stripes(1)[0])
    assert fragment.captions == [
        "a stripe moving down The first of 5 frames; the gallery (out_dir=...) has the animation."
    ]


def test_wide_figures_are_drawn_within_the_pixel_cap_and_those_beyond_the_count_cap_are_counted() -> None:
    report = custom_report("wide_figures", "flipbook")  # the registry's order: the animation, then 3 figures
    fragment = Fragment(report.to_html(max_figures=2))
    (gif, _), (png, wide) = (decoded(image["src"]) for image in fragment.images)
    # 40 x 2 inches at 150 DPI would be 6000 px wide: drawn at 1600 / 40 = 40 DPI instead.
    assert (gif, png, wide.size) == ("gif", "png", (notebook.MAX_SIDE_PIXELS, notebook.MAX_SIDE_PIXELS // 20))
    assert fragment.captions == ["a stripe moving down", "wide figure 0"]
    assert "2 figures were left out to keep the notebook small (at most 2 are embedded" in fragment.text
    assert "left out" not in Fragment(report.to_html()).text


def test_nothing_is_written_to_disk_without_out_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd, temporary = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), temporary.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    inputs, labels = probe()
    model = hostile_cnn()
    report = introspect.analyze(
        model, inputs, labels, analyzers=["grad_cam", "dataset_confusion"], data=TensorDataset(inputs, labels)
    )
    assert report.index_path is None and all(result.ok for result in report.results)
    num_figures = sum(artifact.kind == "figure" for result in report.results for artifact in result.artifacts)
    assert num_figures == 1 + 2 == len(Fragment(report._repr_html_()).images)  # Grad-CAM; confusion, mistakes
    view = introspect.show(model, inputs, "activations")
    # One figure per layer the forward pass ran, Flatten left out (it only reshapes): 5.
    assert len(Fragment(view._repr_html_()).images) == sum(a.kind == "figure" for a in view.artifacts) == 5
    assert list(cwd.iterdir()) == [] and list(temporary.iterdir()) == []


def test_with_out_dir_the_fragment_names_the_gallery_it_wrote(tmp_path: Path) -> None:
    inputs, labels = probe()
    report = introspect.analyze(
        hostile_cnn(), inputs, labels, analyzers=["weight_histograms"], out_dir=tmp_path / "g", load_plugins=False
    )
    assert report.index_path == tmp_path / "g" / "index.html" and report.index_path.is_file()
    assert f"The full gallery: {report.index_path}" in Fragment(report._repr_html_()).text


def test_show_gives_the_numbers_analyze_gives_and_they_equal_pytorch_grad_cam() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    inputs, labels = probe()
    model = hostile_cnn()
    view = introspect.show(
        model, inputs, "grad_cam", labels=labels, layer="conv2", load_options={"load_plugins": False}
    )
    options = {"grad_cam": {"layer": "conv2"}}
    report = introspect.analyze(model, inputs, labels, analyzers=["weight_histograms", "grad_cam"], options=options)
    shown, analyzed = view.artifact("grad-cam"), report.result("grad_cam").artifacts[0]
    assert view.status == "ok" and view.result.options == {"layer": "conv2"} and shown.layer == "conv2"
    assert shown.summary == analyzed.summary and shown.caption == analyzed.caption
    for key in ("cam", "upsampled", "indices", "targets"):
        np.testing.assert_array_equal(shown.data[key], analyzed.data[key])
    # pytorch-grad-cam's map before its scaling: ReLU(sum_c mean(grad_c) * A_c) on conv2's output.
    chosen = inputs[shown.data["indices"]]
    cam = GradCAM(model=model, target_layers=[model.conv2])
    try:
        cam(input_tensor=chosen, targets=[ClassifierOutputTarget(int(target)) for target in shown.data["targets"]])
        activations = cam.activations_and_grads.activations[0].numpy()
        gradients = cam.activations_and_grads.gradients[0].numpy()
    finally:
        cam.activations_and_grads.release()
    raw = np.maximum(cam.get_cam_image(chosen, model.conv2, None, activations, gradients), 0)
    assert np.abs(raw).max() > 0
    np.testing.assert_allclose(shown.data["cam"][:, 0], raw, rtol=1e-4, atol=1e-6 * np.abs(raw).max())
    fragment = Fragment(view._repr_html_())
    assert len(fragment.images) == 1 and fragment.statuses == [("grad_cam", "ok")]


def test_show_refuses_an_unknown_analyzer_or_option_in_one_sentence() -> None:
    inputs, _ = probe()
    model = hostile_cnn()
    no_plugins = {"load_plugins": False}
    with pytest.raises(PluginError, match=r"^unknown analyzer 'grad_camm'\. Did you mean grad_cam"):
        introspect.show(model, inputs, "grad_camm", load_options=no_plugins)
    with pytest.raises(OptionError, match=r"^grad_cam has no option 'layr' \(its options: layer, max_images"):
        introspect.show(model, inputs, "grad_cam", layr="conv2", load_options=no_plugins)
    with pytest.raises(OptionError, match=r"^grad_cam\.max_images='many': expected an integer$"):
        introspect.show(model, inputs, "grad_cam", max_images="many", load_options=no_plugins)
    with pytest.raises(PluginError, match=r"^show needs the name of one analyzer"):
        introspect.show(model, inputs)


def test_show_takes_the_analyzer_name_second_for_a_checkpoint_with_its_own_probe(introspect_checkpoint: Path) -> None:
    view = introspect.show(introspect_checkpoint, "activations", load_options={"load_plugins": False})
    report = introspect.analyze(introspect_checkpoint, analyzers=["activations"], load_plugins=False)
    assert view.status == "ok" and len(view.artifacts) == len(report.results[0].artifacts) > 0
    for shown, analyzed in zip(view.artifacts, report.results[0].artifacts):
        np.testing.assert_array_equal(shown.data["output"], analyzed.data["output"])
    assert view.subject.metadata["format"] == "introspect-v1"
    assert f"Checkpoint {introspect_checkpoint} (introspect-v1)" in Fragment(view._repr_html_()).text


def private_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for this interpreter, in a folder of its own, so the kernel is the venv's whatever is installed."""
    kernel_dir = tmp_path / "jupyter" / "kernels" / "introspect-test"
    kernel_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (kernel_dir / "kernel.json").write_text(json.dumps({**spec, "display_name": "introspect tests"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # The kernel's history and connection files go to the test's folder, not the user's home.
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    # Two shared cores: torch's threads in the kernel would only fight each other (and the suite's).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return "introspect-test"


def test_the_example_notebook_runs_and_shows_its_figures_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbclient = pytest.importorskip("nbclient", reason="nbclient is a test extra: pip install -e '.[test]'")
    nbformat = pytest.importorskip("nbformat", reason="nbformat is a test extra: pip install -e '.[test]'")
    work = tmp_path / "work"
    work.mkdir()
    notebook_node = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook_node,
        kernel_name=private_kernel(tmp_path, monkeypatch),
        timeout=120,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    outputs = [output for cell in notebook_node.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    pages = [output.data["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    assert len(pages) == 2  # the report of four analyzers, then show's Grad-CAM
    report_page, cam_page = Fragment(pages[0]), Fragment(pages[1])
    assert len(report_page.images) == 4  # weight histograms, two kernel grids, the confusion matrix
    assert ("training_curves", "skipped") in report_page.statuses
    assert len(cam_page.images) == 1 and cam_page.captions[0].startswith("conv2: Grad-CAM on the output of conv2")
    printed = "".join(output.text for output in outputs if output.output_type == "stream" and output.name == "stdout")
    accuracy = re.search(r"held-out accuracy (\d+\.\d)%", printed)
    assert accuracy and float(accuracy.group(1)) > 80.0, printed
    assert "maps: (6, 4, 4)" in printed and "'cam_shape': [4, 4]" in printed
    assert list(work.iterdir()) == []
