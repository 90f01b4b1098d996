"""Analyzer options: parsed from ``--option``, typed by the analyzer's signature, checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from introspect.api import analyze
from introspect.cli import main
from introspect.options import OptionError, option_types, parse_assignments, resolve_options
from introspect.registry import Registry
from introspect.testing import conv_image_subject


def builtin(name: str):  # noqa: ANN201 - an AnalyzerSpec
    return Registry.default(load_plugins=False).get(name)


def test_assignments_are_grouped_by_analyzer_and_keep_their_text() -> None:
    parsed = parse_assignments(["grad_cam.layer=4", "input_saliency.n_steps = 8", "grad_cam.max_images=3"])
    assert parsed == {"grad_cam": {"layer": "4", "max_images": "3"}, "input_saliency": {"n_steps": "8"}}


@pytest.mark.parametrize("text", ["grad_cam.layer", "layer=4", ".layer=4", "grad_cam.=4"])
def test_a_malformed_assignment_is_one_sentence(text: str) -> None:
    with pytest.raises(OptionError, match="ANALYZER.KEY=VALUE"):
        parse_assignments([text])


def test_values_take_the_type_of_the_analyzers_parameter() -> None:
    specs = [builtin("grad_cam"), builtin("input_saliency"), builtin("occlusion"), builtin("activation_health")]
    raw = {
        "grad_cam": {"layer": "4"},  # str | None: a layer named "4" stays a string
        "input_saliency": {"methods": "saliency, smoothgrad", "n_steps": "8"},
        "occlusion": {"window": "none", "stride": "2"},
        "activation_health": {"eps": "0.5"},
    }
    resolved = resolve_options(specs, raw)
    assert resolved["grad_cam"] == {"layer": "4"}
    assert resolved["input_saliency"] == {"methods": ("saliency", "smoothgrad"), "n_steps": 8}
    assert resolved["occlusion"] == {"window": None, "stride": 2}
    assert resolved["activation_health"] == {"eps": 0.5}


def test_typed_values_from_python_pass_through() -> None:
    assert resolve_options([builtin("grad_cam")], {"grad_cam": {"max_images": 3}}) == {"grad_cam": {"max_images": 3}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"grad_cam": {"layr": "4"}}, r"grad_cam has no option 'layr' \(its options: layer, max_images"),
        ({"grad_cam": {"max_images": "many"}}, r"grad_cam.max_images='many': expected an integer"),
        ({"occlusion": {"window": "wide"}}, "expected an integer"),
        ({"kernel_grids": {"max_kernels": "4"}}, "kernel_grids, which is not among the selected analyzers"),
    ],
)
def test_wrong_options_name_the_analyzer_the_key_and_the_choices(raw: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        resolve_options([builtin("grad_cam"), builtin("occlusion")], raw)


def test_every_builtin_option_can_be_set_from_text() -> None:
    for spec in Registry.default(load_plugins=False):
        for key, default in spec.options().items():
            text = ",".join(default) if isinstance(default, tuple) else str(default)
            resolved = resolve_options([spec], {spec.name: {key: text}})
            assert resolved[spec.name][key] == default, (spec.name, key)
        assert set(option_types(spec)) == set(spec.options())


def test_the_api_checks_options_before_loading_anything() -> None:
    with pytest.raises(OptionError, match="has no option 'bogus'"):
        analyze(conv_image_subject(), analyzers=["grad_cam"], options={"grad_cam": {"bogus": 1}})


def test_an_option_reaches_the_analyzer_and_the_manifest(tmp_path: Path) -> None:
    subject = conv_image_subject(channels=3)
    report = analyze(
        subject, analyzers=["grad_cam"], options={"grad_cam": {"layer": "0", "max_images": 2}}, out_dir=tmp_path / "g"
    )
    (result,) = report.results
    assert result.ok and result.artifacts[0].summary["layer"] == "0" and result.artifacts[0].summary["num_images"] == 2
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["analyzers"][0]["options"] == {"layer": "0", "max_images": 2}


def test_cli_option_error_is_exit_2_and_leaves_no_folder(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "gallery"
    args = [
        "analyze",
        str(introspect_checkpoint),
        "--all",
        "--option",
        "weight_histograms.bins=lots",
        "-o",
        str(out_dir),
    ]
    with pytest.raises(SystemExit) as caught:
        main(args)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and not out_dir.exists()
    assert err.strip() == "introspect: error: weight_histograms.bins='lots': expected an integer"


def test_cli_option_sets_bins_of_the_histograms(
    introspect_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "gallery"
    args = ["analyze", str(introspect_checkpoint), "-a", "weight_histograms", "--option", "weight_histograms.bins=7"]
    with pytest.raises(SystemExit) as caught:
        main([*args, "-o", str(out_dir)])
    capsys.readouterr()
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert caught.value.code == 0 and manifest["analyzers"][0]["options"] == {"bins": 7}


def test_list_name_shows_options_with_types_and_defaults(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["list", "grad_cam", "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert {"name": "layer", "type": "str | None", "default": None} in row["options"]
    with pytest.raises(SystemExit):
        main(["list", "input_saliency"])
    out = capsys.readouterr().out
    assert "--option input_saliency.n_steps=...  (int, default 32)" in out
