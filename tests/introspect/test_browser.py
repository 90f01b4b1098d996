"""The gallery in a real browser: headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from introspect import Artifact, Needs, analyzer
from introspect.api import analyze
from introspect.plotting import new_figure
from introspect.registry import Registry
from introspect.spec import spec_of
from introspect.subject import Subject, Task
from introspect.testing import conv_image_subject

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "build" / "screenshots"
HOSTILE = '<img src=x onerror="window.__pwned = 1">'

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (make test installs Debian's chromium when it can)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


def open_page(browser, index: Path):  # noqa: ANN001, ANN201
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def load_every_image(page) -> None:  # noqa: ANN001
    """Images are lazy (they load near the viewport); make them eager and wait for all of them."""
    assert page.evaluate("Array.from(document.querySelectorAll('main img')).every(img => img.loading === 'lazy')")
    page.evaluate("document.querySelectorAll('main img').forEach(img => { img.loading = 'eager'; })")
    page.wait_for_function(
        "Array.from(document.querySelectorAll('main img')).every(img => img.complete)", timeout=120_000
    )


def test_gallery_loads_cleanly_and_navigation_reaches_every_section(browser, tmp_path: Path) -> None:  # noqa: ANN001
    report = analyze(conv_image_subject(), out_dir=tmp_path / "g", registry=Registry.default(load_plugins=False))
    page, errors = open_page(browser, report.index_path)
    load_every_image(page)
    broken = page.evaluate(
        "Array.from(document.querySelectorAll('main img')).filter(img => img.naturalWidth === 0).map(img => img.src)"
    )
    assert broken == []
    assert page.evaluate("document.querySelectorAll('main img').length") == sum(
        1 for result in report.results for artifact in result.artifacts if artifact.kind != "table"
    )
    for result in report.results:
        page.click(f"nav a[href='#{result.name}']")
        assert page.evaluate("location.hash") == f"#{result.name}"
        assert page.locator(f"section#{result.name}").is_visible()
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOT_DIR / "gallery.png"), full_page=False)
    first_zoom = page.locator("a.zoom").first
    first_zoom.click()
    assert page.locator("dialog#viewer").evaluate("dialog => dialog.open")
    assert page.locator("dialog#viewer img").evaluate("img => img.getAttribute('src')") == first_zoom.get_attribute(
        "href"
    )
    assert errors == []


@analyzer(needs=Needs.WEIGHTS)
def hostile_caption(subject, /):
    """Shows a figure whose caption and layer carry markup."""
    return [Artifact(name=HOSTILE, caption=HOSTILE, layer=HOSTILE, figure=new_figure(2, 2))]


def test_markup_in_checkpoint_strings_shows_as_text_and_runs_nothing(browser, tmp_path: Path) -> None:  # noqa: ANN001
    subject = Subject(
        weights={f"{HOSTILE}.weight": torch.ones(3, 3)},
        task=Task(kind="classification", class_names=(HOSTILE,), dataset=HOSTILE),
        metadata={"architecture": HOSTILE, "metrics": {HOSTILE: 1.0}, "path": HOSTILE},
    )
    report = analyze(subject, out_dir=tmp_path / "g", registry=Registry([spec_of(hostile_caption)]))
    page, errors = open_page(browser, report.index_path)
    load_every_image(page)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("h1").inner_text() == f"introspect: {HOSTILE}"
    assert HOSTILE in page.locator("figcaption").first.inner_text()
    assert page.evaluate("document.querySelectorAll('main img').length") == 1
    assert errors == []


def test_gallery_works_with_javascript_off(browser, tmp_path: Path) -> None:  # noqa: ANN001
    report = analyze(
        conv_image_subject(),
        out_dir=tmp_path / "g",
        analyzers=["weight_histograms"],
        registry=Registry.default(load_plugins=False),
    )
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(report.index_path.as_uri())
    link = page.locator("a.zoom").first
    href = link.get_attribute("href")
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith(href)
    context.close()


def test_the_projection_scatter_shows_each_points_input_on_hover_offline(browser, tmp_path: Path) -> None:  # noqa: ANN001
    from introspect.testing import all_test_subjects

    report = analyze(all_test_subjects()["conv_rgb"], out_dir=tmp_path / "g", analyzers=["embedding_projection"])
    view = json.loads((tmp_path / "g" / "manifest.json").read_text())["analyzers"][0]["figures"][0]["interactive"]
    page, errors = open_page(browser, report.index_path)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    scatter = page.locator("div.scatter")
    assert scatter.is_visible() and not page.locator("figure.has-scatter > a.zoom").is_visible()
    assert page.locator("div.scatter svg").count() == 2
    assert page.locator("div.scatter svg").first.locator("circle").count() == len(view["indices"])

    last = len(view["indices"]) - 1  # drawn last, so on top of any point it overlaps
    page.locator("div.scatter svg").nth(1).locator("circle").last.hover()
    tip = page.locator("div.scatter .tip")
    label = view["class_names"][view["labels"][last]]
    assert tip.is_visible() and tip.inner_text() == f"input {view['indices'][last]} \u00b7 {label}"
    columns, (height, width) = view["sprites"]["columns"], view["sprites"]["cell"]
    scale = max(1, 96 // max(height, width))
    row, column = divmod(last, columns)
    position = tip.locator("div").evaluate("element => element.style.backgroundPosition")
    assert position == f"{-column * width * scale}px {-row * height * scale}px".replace("-0px", "0px")
    assert page.locator("div.scatter circle.hot").count() == 2  # the same input marked in both views
    page.wait_for_load_state("networkidle")
    assert any(url.endswith("/figures/" + view["sprites"]["file"]) for url in requests)
    assert all(url.startswith("file://") for url in requests)  # the sprite sheet and nothing from the network

    first_class = page.locator(".scatter .legend button").first
    first_class.click()
    hidden = page.evaluate(
        "Array.from(document.querySelector('div.scatter svg').querySelectorAll('circle'))"
        ".filter(circle => circle.style.display === 'none').length"
    )
    assert hidden == view["labels"].count(0) and first_class.get_attribute("aria-pressed") == "false"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.locator("section#embedding_projection").screenshot(path=str(SCREENSHOT_DIR / "projection.png"))
    assert errors == []


def test_the_scorecard_table_and_the_cka_comparison_show_their_numbers(browser, tmp_path: Path) -> None:  # noqa: ANN001
    from introspect.compare import compare_subjects
    from introspect.report import write_comparison

    report = analyze(
        conv_image_subject(),
        out_dir=tmp_path / "g",
        analyzers=["attribution_scorecard", "saliency_sanity", "layer_drift"],
        registry=Registry.default(load_plugins=False),
    )
    page, errors = open_page(browser, report.index_path)
    load_every_image(page)
    scorecard = report.result("attribution_scorecard").artifacts[0]
    rows = page.locator("section#attribution_scorecard table.data tr")
    assert rows.count() == 1 + len(scorecard.table)  # the header, then one row per method and control
    headers = rows.nth(0).locator("th").all_inner_texts()
    deletion = headers.index("deletion AUC (lower better)")
    first = rows.nth(1).locator("td").all_inner_texts()
    values = scorecard.data["deletion"]["saliency"]
    assert first[0] == "Saliency"
    assert first[deletion].startswith(f"{values.mean():.3f} \u00b1 {values.std():.3f}")
    assert page.locator("section#attribution_scorecard table.data").inner_text().count("\u2605") >= len(headers) - 4
    assert "control: random map" in page.locator("section#attribution_scorecard").inner_text()
    page.locator("section#attribution_scorecard").screenshot(path=str(SCREENSHOT_DIR / "scorecard.png"))
    assert page.locator("section#saliency_sanity img").count() == 1
    assert errors == []

    comparison = compare_subjects([("seed 0", conv_image_subject(0)), ("seed 1", conv_image_subject(1))])
    index = write_comparison(comparison, tmp_path / "compare")
    page, errors = open_page(browser, index)
    load_every_image(page)
    cka = page.locator("figure", has_text="CKA")
    assert cka.count() == len(comparison.representations) >= 1  # one heatmap per pair of checkpoints
    assert cka.first.locator("img").evaluate("img => img.naturalWidth") > 0
    assert page.locator("section#representations-1 h2").inner_text() == "Layer similarity: seed 0 against seed 1"
    assert errors == []


def as_the_page_shows(value: object) -> str:
    """A table cell as page.html.j2 writes it: an integer with thousands separators, anything else as str()."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def table_cells(page, selector: str) -> list[list[str]]:  # noqa: ANN001
    """The text of every cell of the table at ``selector``, row by row (the header row first)."""
    return page.locator(selector).evaluate(
        "table => Array.from(table.rows).map(row => Array.from(row.cells).map(cell => cell.innerText))"
    )


def roar_rows_from_curves(curves: dict[str, list[float]]) -> list[list[str]]:
    """The ROAR table worked out again from the curves figure's summary, so the table and the plot must agree."""
    import numpy as np

    rows = []
    for method, accuracies in curves.items():
        gap = float(np.mean(np.subtract(accuracies, curves["random"])))  # negative: the method removed more evidence
        rows.append(
            [method, *(as_the_page_shows(round(value, 4)) for value in accuracies), as_the_page_shows(round(gap, 4))]
        )
    return rows


def test_the_trust_retrain_page_shows_the_roar_and_randomization_numbers(
    browser,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from introspect.report.render import figure_anchor
    from tests.trainers.test_roar import write_trust_retrain_page

    out_dir = write_trust_retrain_page(tmp_path, monkeypatch)
    analyzers = json.loads((out_dir / "manifest.json").read_text())["analyzers"]
    results = {result["name"]: result for result in analyzers}
    page, errors = open_page(browser, out_dir / "index.html")
    load_every_image(page)
    assert page.evaluate("Array.from(document.querySelectorAll('main img')).every(img => img.naturalWidth > 0)")
    assert page.evaluate("document.querySelectorAll('main img').length") == sum(
        1 for result in analyzers for figure in result["figures"] if figure["kind"] != "table"
    )
    for name in ("roar", "data_randomization"):
        assert page.locator(f"section#{name}").is_visible()
        assert page.locator(f"section#{name} h2 .status").inner_text() == results[name]["status"] == "ok"

    roar = results["roar"]
    curves_figure = next(figure for figure in roar["figures"] if figure["name"] == "roar-curves")
    summary = curves_figure["summary"]
    index, table = next((i, figure) for i, figure in enumerate(roar["figures"], start=1) if figure["kind"] == "table")
    cells = table_cells(page, f"figure#{figure_anchor('roar', index)} table.data")
    fractions = [f"{100 * fraction:g}% removed" for fraction in summary["fractions"]]
    assert cells[0] == ["method", *fractions, "mean gap to random"]
    assert cells[1:] == [[as_the_page_shows(value) for value in row.values()] for row in table["table"]]
    assert cells[1:] == roar_rows_from_curves(summary["curves"])
    roar_text = page.locator("section#roar").inner_text()
    assert f"Clean accuracy {summary['clean_accuracy']:.3f}." in roar_text

    twins = results["data_randomization"]["figures"][0]["summary"]
    caption = page.locator("section#data_randomization figcaption").inner_text()
    assert f"maps of {twins['num_images']} test images" in caption
    for twin in ("second_seed_spearman", "random_labels_spearman"):
        assert f"{twins[twin]['mean']:.3f} \u00b1 {twins[twin]['std']:.3f}" in caption  # as the caption rounds them
    assert f"the test {'passes' if twins['passes'] else 'fails'}" in caption

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.locator("section#roar").screenshot(path=str(SCREENSHOT_DIR / "roar.png"))
    assert errors == []
