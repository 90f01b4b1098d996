"""The output folder: --force replaces only an earlier gallery; protected folders; modes; signals; locks; OS errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from introspect.cli import main
from introspect.errors import GalleryError
from introspect.report import write_collection, write_gallery
from introspect.report.files import unique_slugs
from introspect.report.layout import foreign_entry
from introspect.report.outdir import staging_folder
from introspect.testing import dense_image_subject

LIGHT_ENV = {**os.environ, "INTROSPECT_DISABLE_PLUGIN_AUTOLOAD": "1"}
BUSY = "is being written by another introspect run"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture) -> Run:
    """``run(*args)``: the CLI in this process; returns (exit code, stdout, stderr)."""

    def run_cli(*args: str | Path) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as caught:
            main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return caught.value.code, captured.out, captured.err

    return run_cli


@pytest.fixture
def ckpt(introspect_checkpoint: Path) -> Path:
    return introspect_checkpoint


def analyze_args(checkpoint: Path, out: Path | str, *extra: str) -> list[str | Path]:
    return ["analyze", checkpoint, "-a", "weight_histograms", "-o", out, "--device", "cpu", *extra]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``folder`` with its mode and, for files, its bytes."""
    return {
        path.relative_to(folder).as_posix(): (path.lstat().st_mode, path.read_bytes() if path.is_file() else None)
        for path in sorted(folder.rglob("*"))
    }


def dot_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("introspect: error: "), err
    return err.strip()


def user_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    (folder / "src").mkdir()
    (folder / "src" / "main.py").write_text("print('mine')\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def earlier_gallery(folder: Path) -> Path:
    write_gallery(dense_image_subject(), [], [], folder)
    return folder


# --- 1. --force replaces only an earlier introspect gallery ---------------------------------------


def _project(folder: Path) -> str:
    user_project(folder)
    return "it has no manifest.json and holds .git"


def _foreign_manifest(folder: Path) -> str:
    user_project(folder)
    (folder / "manifest.json").write_text(json.dumps({"name": "my-web-app", "version": "1.0.0"}))
    return "manifest.json was not written by introspect"


def _gallery_with_thesis(folder: Path) -> str:
    earlier_gallery(folder)
    (folder / "thesis.tex").write_text("mine")
    return "it holds thesis.tex, which introspect does not write"


def _gallery_with_extra_figure(folder: Path) -> str:
    earlier_gallery(folder)
    (folder / "figures").mkdir()
    (folder / "figures" / "my-plot.png").write_bytes(b"\x89PNG mine")
    return "it holds figures/my-plot.png, which introspect does not write"


@pytest.mark.parametrize("make", [_project, _foreign_manifest, _gallery_with_thesis, _gallery_with_extra_figure])
def test_force_refuses_a_folder_that_is_not_only_a_gallery(make, ckpt: Path, tmp_path: Path, run: Run) -> None:
    target = tmp_path / "myproject"
    reason = make(target)
    before = snapshot(target)
    code, out, err = run(*analyze_args(ckpt, target, "--force"))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert line.startswith(f"introspect: error: {target}: not replaced") and f"({reason})" in line
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myproject", "toy.pt"]


def test_without_force_a_foreign_folder_says_so(ckpt: Path, tmp_path: Path, run: Run) -> None:
    target = user_project(tmp_path / "myproject")
    code, _, err = run(*analyze_args(ckpt, target))
    assert code == 2
    assert "is not an introspect gallery (it has no manifest.json and holds .git)" in one_error_line(err)


@pytest.mark.parametrize("kind", ["page", "collection", "comparison"])
def test_force_replaces_an_earlier_gallery_of_each_kind(kind: str, ckpt: Path, tmp_path: Path, run: Run) -> None:
    target = tmp_path / kind
    command = {
        "page": analyze_args(ckpt, target),
        "collection": ["analyze", ckpt, ckpt, "-a", "weight_histograms", "-o", target],
        "comparison": ["compare", ckpt, ckpt, "-o", target],
    }[kind]
    assert run(*command)[0] == 0
    assert json.loads((target / "manifest.json").read_text())["generator"] == "introspect"
    code, _, err = run(*command, "--force")
    assert code == 0, err
    assert dot_entries(tmp_path) == []


def test_old_manifests_without_the_marker_are_still_recognised(tmp_path: Path) -> None:
    target = earlier_gallery(tmp_path / "g")
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.pop("generator")
    (target / "manifest.json").write_text(json.dumps(manifest))
    assert foreign_entry(target) is None
    write_gallery(dense_image_subject(), [], [], target, force=True)
    assert json.loads((target / "manifest.json").read_text())["generator"] == "introspect"


def test_a_collection_with_linked_comparisons_is_recognised_and_checked_inside(tmp_path: Path) -> None:
    from introspect.api import analyze
    from introspect.compare import compare_subjects
    from introspect.report import write_comparison

    subjects = [dense_image_subject(seed) for seed in (0, 1)]
    reports = [(title, analyze(subject, analyzers=["weight_histograms"])) for title, subject in zip("ab", subjects)]
    site = tmp_path / "site"
    links = [{"title": "a vs b", "href": "comparisons/ab/index.html"}, {"title": "x", "href": "http://x/index.html"}]
    write_collection(reports, site, extra_links=links)
    write_comparison(compare_subjects(list(zip("ab", subjects))), site / "comparisons" / "ab")
    assert foreign_entry(site) is None
    (site / "comparisons" / "notes.md").write_text("mine")
    assert foreign_entry(site) == "it holds comparisons/notes.md, which introspect does not write"
    (site / "comparisons" / "notes.md").unlink()
    (site / "a" / "figures" / "extra.png").write_bytes(b"mine")
    assert foreign_entry(site) == "it holds a/figures/extra.png, which introspect does not write"


MALFORMED = [
    '{"generator": "introspect", "pages": [1, {"slug": "../x"}, {"slug": ["notes.txt"]}], "links": "no"}',
    '{"generator": "introspect", "analyzers": [3, {"figures": [{"file": "figures/../notes.txt"}, {"file": 5}]}]}',
    '{"generator": "introspect", "kind": "comparison", "figures": {"file": "notes.txt"}}',
    '{"generator": "introspect"}',
    "[1, 2]",
    "not json",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_a_malformed_manifest_is_a_refusal_not_a_crash(text: str, tmp_path: Path) -> None:
    target = tmp_path / "g"
    target.mkdir()
    (target / "manifest.json").write_text(text)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(GalleryError, match="not an earlier introspect gallery"):
        write_gallery(dense_image_subject(), [], [], target, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "notes.txt"]


# --- 2. protected folders ------------------------------------------------------------------------


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("where", [".", "..", "/", "home", "above-home", "link-to-home"])
def test_protected_folders_are_refused_before_any_analysis(
    where: str, force: bool, ckpt: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "users" / "me"
    work = home / "work"
    work.mkdir(parents=True)
    earlier_gallery(work / "g")  # even a folder holding only galleries is never replaced
    (tmp_path / "link-to-home").symlink_to(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    out = {"home": home, "above-home": home.parent, "link-to-home": tmp_path / "link-to-home"}.get(where, where)
    before = snapshot(tmp_path)
    code, stdout, err = run(*analyze_args(ckpt, out, *(["--force"] if force else [])))
    assert code == 2 and stdout == ""
    line = one_error_line(err)
    assert "a gallery never replaces it" in line or (where == "link-to-home" and "symbolic link" in line)
    assert snapshot(tmp_path) == before


def test_a_path_ending_in_dotdot_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(GalleryError, match="name the output folder itself"):
        write_gallery(dense_image_subject(), [], [], tmp_path / "a" / "b" / "..", force=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b"]


# --- 3. folder mode ------------------------------------------------------------------------------


def test_a_replaced_folder_keeps_its_mode_and_a_new_one_follows_the_umask(ckpt: Path, tmp_path: Path, run: Run) -> None:
    previous = os.umask(0o027)
    try:
        code, _, err = run(*analyze_args(ckpt, tmp_path / "fresh"))
        assert code == 0, err
        assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o750  # not mkdtemp's 0700
        kept = earlier_gallery(tmp_path / "kept")
        kept.chmod(0o711)
        code, _, err = run(*analyze_args(ckpt, kept, "--force"))
        assert code == 0, err
        assert stat.S_IMODE(kept.stat().st_mode) == 0o711 and (kept / "figures").is_dir()
    finally:
        os.umask(previous)


# --- 4. stop signals and leftovers of killed runs ------------------------------------------------

SLOW_CLI_RUN = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    import introspect.report.files as files

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    checkpoint, target, marker = sys.argv[1:4]
    original = files.write_artifact_file

    def slow_write(*args, **kwargs):
        name = original(*args, **kwargs)
        Path(marker).touch()
        time.sleep(60)
        return name

    files.write_artifact_file = slow_write
    from introspect.cli import main
    main(["analyze", checkpoint, "-a", "weight_histograms", "-o", target, "--force", "--device", "cpu"])
    """
)

SLOW_STAGING = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from introspect.report.outdir import claim_output_dir, staging_folder

    # a background job may inherit ignored signals; a user's terminal does not
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target, marker = Path(sys.argv[1]), Path(sys.argv[2])
    with claim_output_dir(target, force=True), staging_folder(target) as staging:
        (staging / "index.html").write_text("half")
        marker.touch()
        time.sleep(60)
    """
)

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from introspect.report.outdir import claim_output_dir

    with claim_output_dir(sys.argv[1], force=True):
        Path(sys.argv[2]).touch()
        time.sleep(60)
    """
)


def start_and_wait(script: str, *args: str | Path) -> subprocess.Popen:
    """Run ``script`` with ``args`` (the last one a marker file) until it touches the marker."""
    marker = Path(args[-1])
    command = [sys.executable, "-c", script, *map(str, args)]
    process = subprocess.Popen(command, env=LIGHT_ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), process.stderr.read() if process.poll() is not None else "never got there"
    return process


def test_sigterm_while_writing_removes_staging_and_lock_and_keeps_the_gallery(ckpt: Path, tmp_path: Path) -> None:
    target = earlier_gallery(tmp_path / "gallery")
    before = snapshot(target)
    process = start_and_wait(SLOW_CLI_RUN, ckpt, target, tmp_path / "writing")
    assert any(".tmp-" in name for name in dot_entries(tmp_path)) and (tmp_path / ".gallery.lock").exists()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert process.stderr.read().strip().endswith("interrupted by SIGTERM; no partial gallery was left behind")
    assert dot_entries(tmp_path) == [] and snapshot(target) == before


@pytest.mark.parametrize("stop_signal", [signal.SIGHUP, signal.SIGINT])
def test_other_stop_signals_clean_up_too(stop_signal: int, tmp_path: Path) -> None:
    target = earlier_gallery(tmp_path / "gallery")
    before = snapshot(target)
    process = start_and_wait(SLOW_STAGING, target, tmp_path / "writing")
    process.send_signal(stop_signal)
    process.wait(timeout=30)
    assert f"Interrupted: interrupted by {signal.Signals(stop_signal).name}" in process.stderr.read()
    assert dot_entries(tmp_path) == [] and snapshot(target) == before


def test_leftovers_of_a_killed_run_are_removed_only_when_their_process_is_gone(tmp_path: Path) -> None:
    target = earlier_gallery(tmp_path / "gallery")
    process = start_and_wait(SLOW_STAGING, target, tmp_path / "writing")
    process.kill()
    process.wait(timeout=30)
    assert any(f".tmp-{process.pid}-" in name for name in dot_entries(tmp_path))
    live = tmp_path / f".gallery.tmp-{os.getppid()}-0123abcd"  # a live run's staging folder
    live.mkdir()
    (tmp_path / f".gallery.old-{process.pid}").mkdir()  # the retired-folder name of earlier versions
    (tmp_path / ".gallery.tmp-notapid").mkdir()  # no pid to check: left alone
    (tmp_path / f".gallery.tmp-{10**30}-0123abcd").mkdir()  # no process can have that pid
    write_gallery(dense_image_subject(), [], [], target, force=True)
    assert dot_entries(tmp_path) == sorted([live.name, ".gallery.tmp-notapid"])


# --- 5. one run per folder -----------------------------------------------------------------------


def test_a_second_run_into_a_locked_folder_fails_cleanly(ckpt: Path, tmp_path: Path, run: Run) -> None:
    target = earlier_gallery(tmp_path / "gallery")
    before = snapshot(target)
    holder = start_and_wait(HOLD_LOCK, target, tmp_path / "holding")
    try:
        for command in (analyze_args(ckpt, target, "--force"), ["compare", ckpt, ckpt, "-o", target, "--force"]):
            code, _, err = run(*command)
            assert code == 2
            assert one_error_line(err) == f"introspect: error: {target} {BUSY} (pid {holder.pid})"
        assert snapshot(target) == before
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert not (tmp_path / ".gallery.lock").exists()  # the holder removed it on SIGTERM
    assert run(*analyze_args(ckpt, target, "--force"))[0] == 0


def test_the_lock_is_taken_before_analysis_and_a_stale_lock_file_does_not_block(
    ckpt: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import introspect.api as api

    target = tmp_path / "gallery"
    (tmp_path / ".gallery.lock").write_text("999999999\n")  # left by a dead run: its flock died with it
    seen = []
    original = api.run_analyzers

    def probing(*args, **kwargs):
        command = [sys.executable, "-c", HOLD_LOCK, str(target), str(tmp_path / "never")]
        probe = subprocess.run(command, env=LIGHT_ENV, capture_output=True, text=True, timeout=60)
        seen.append(probe.stderr.strip().splitlines()[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "run_analyzers", probing)
    code, _, err = run(*analyze_args(ckpt, target))
    assert code == 0, err
    assert seen == [f"introspect.errors.GalleryError: {target} {BUSY} (pid {os.getpid()})"]
    assert dot_entries(tmp_path) == [] and (target / "index.html").exists()


# --- 6. OS failures and colliding page names -----------------------------------------------------


def test_a_full_disk_is_one_line_and_leaves_nothing(
    ckpt: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    kept = earlier_gallery(tmp_path / "kept")
    before = snapshot(kept)
    monkeypatch.setattr("introspect.report.files.write_manifest_and_page", full)
    for target, extra in ((tmp_path / "new", ()), (kept, ("--force",))):
        code, _, err = run(*analyze_args(ckpt, target, *extra))
        assert code == 2 and "Traceback" not in err  # the lines before it are the analyzers' progress
        message = f"{target}: cannot write the gallery: No space left on device; nothing was written"
        assert err.splitlines()[-1] == f"introspect: error: {message}"
    assert not (tmp_path / "new").exists() and snapshot(kept) == before and dot_entries(tmp_path) == []


def test_a_read_only_parent_is_one_line_before_analysis(
    ckpt: Path, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "readonly"
    parent.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: refuse the way the kernel would for anyone else
        real_open = os.open

        def refusing(path, *args, **kwargs):
            if str(path).startswith(str(parent)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing)
    parent.chmod(0o555)
    try:
        code, _, err = run(*analyze_args(ckpt, parent / "g"))
    finally:
        parent.chmod(0o755)
    assert code == 2
    message = f"{parent / 'g'}: cannot write beside it in {parent} (Permission denied)"
    assert one_error_line(err) == f"introspect: error: {message}"
    assert list(parent.iterdir()) == []


def test_a_failed_run_leaves_no_lock_file_and_no_folders_it_made(tmp_path: Path, run: Run) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    code, _, err = run("analyze", bad, "-a", "weight_histograms", "-o", tmp_path / "new" / "deeper" / "g")
    assert code == 2 and one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


@pytest.mark.parametrize("out", ["afile", "afile/g"])
def test_a_file_in_the_way_is_one_line(out: str, ckpt: Path, tmp_path: Path, run: Run) -> None:
    (tmp_path / "afile").write_text("mine")
    code, _, err = run(*analyze_args(ckpt, tmp_path / out, "--force"))
    assert code == 2 and str(tmp_path / out) in one_error_line(err)
    assert (tmp_path / "afile").read_text() == "mine"


def test_pages_whose_names_collide_get_distinct_folders(ckpt: Path, tmp_path: Path, run: Run) -> None:
    names = ["a.pt", "a.pth", "A.ckpt", "a-2.pt"]  # slugs a, a, a, a-2
    for name in names:
        shutil.copy(ckpt, tmp_path / name)
    code, _, err = run("analyze", *(tmp_path / name for name in names), "-a", "weight_histograms", "-o", tmp_path / "s")
    assert code == 0, err
    pages = json.loads((tmp_path / "s" / "manifest.json").read_text())["pages"]
    assert [page["slug"] for page in pages] == ["a", "a-2", "a-3", "a-2-2"]
    assert all((tmp_path / "s" / page["slug"] / "index.html").exists() for page in pages)


def test_unique_slugs_never_repeat_an_explicit_suffixed_name() -> None:
    assert unique_slugs(["a", "a", "a-2"]) == ["a", "a-2", "a-2-2"]
    assert unique_slugs(["a-2", "a", "a"]) == ["a-2", "a", "a-3"]
    assert unique_slugs(["x y", "x_y", "X Y"]) == ["x-y", "x_y", "x-y-2"]
    assert unique_slugs(["index"], reserved={"index"}) == ["index-2"]


def test_staging_folder_turns_os_errors_into_gallery_errors(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match=r"cannot write the gallery: No space left on device"):
        with staging_folder(tmp_path / "g") as staging:
            (staging / "index.html").write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
