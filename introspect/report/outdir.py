"""The output folder: what may be replaced, who is writing it, and how it is replaced safely.

A gallery is written into a hidden staging folder beside the target (``.NAME.tmp-PID-TOKEN``) and
renamed into place; a previous gallery is moved aside first (``.NAME.old-PID-TOKEN``) and deleted
once the new one is in place. Around that:

* ``--force`` replaces only a folder introspect wrote and that holds nothing else (see
  :func:`foreign_entry`); ``/``, the home folder, the working folder and the folders above them
  are never written over at all.
* A lock file beside the target (``.NAME.lock``, ``fcntl.flock``) keeps two runs from writing one
  folder; the kernel drops the lock when its process dies, so a stale lock file never blocks.
* SIGTERM, SIGHUP and SIGINT become :class:`Interrupted` while a folder is claimed, so the
  staging and retired folders are removed before the process exits; folders left by a killed
  run (SIGKILL) are removed by the next run into the same target once their process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from introspect.errors import GalleryError
from introspect.report.layout import foreign_entry

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; runs there are not serialized
    fcntl = None  # type: ignore[assignment]

# O_NOFOLLOW: a link planted at the lock's name must not make us truncate the file it points to.
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` for a one-line message: as typed, or quoted when it holds control characters."""
    text = str(path)
    return repr(text) if any(ord(char) < 32 or ord(char) == 127 for char in text) else text


# --- which folders may be written ---------------------------------------------------------------


def check_output_dir(out_dir: str | os.PathLike[str], *, force: bool) -> Path:
    """Fail early, before any work, when ``out_dir`` may not be written or replaced.

    Raises:
        GalleryError: a protected folder (see :func:`refuse_unsafe_target`), a file, a folder that
            exists without ``force``, or a folder that is not an earlier introspect gallery.
    """
    target = Path(out_dir)
    refuse_unsafe_target(target)
    check_target(target, force=force)
    return target


def refuse_unsafe_target(target: Path) -> None:
    """Refuse ``/``, the home and working folders and every folder above them, ``..``, and symbolic links."""
    try:
        if target.is_symlink():
            raise GalleryError(f"{shown(target)}: is a symbolic link; give a real folder as the output folder")
        resolved = target.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symbolic link loop
        reason = getattr(error, "strerror", None) or error
        raise GalleryError(f"{shown(target)}: cannot be used as the output folder ({reason})") from None
    for what, protected in _protected_folders():
        if resolved == protected:
            raise GalleryError(f"{shown(target)}: is {what}; a gallery never replaces it, choose a new folder")
        if resolved in protected.parents:
            raise GalleryError(f"{shown(target)}: holds {what}; a gallery never replaces it, choose a new folder")
    if target.name in ("", ".", ".."):  # the folder above "x/..": name it, so its lock and staging sit beside it
        raise GalleryError(f"{shown(target)}: name the output folder itself, not a path ending in '..'")


def _protected_folders() -> list[tuple[str, Path]]:
    folders = [("the root folder", Path(Path.cwd().anchor or "/").resolve())]
    with contextlib.suppress(OSError):  # the working folder may have been deleted under us
        folders.append(("the working folder", Path.cwd().resolve()))
    with contextlib.suppress(RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        folders.append(("the home folder", Path.home().resolve()))
    return folders


def check_target(target: Path, *, force: bool) -> None:
    """Raise :class:`GalleryError` unless ``target`` is absent, or may be replaced with ``force``."""
    try:
        if not os.path.lexists(target):
            return
        if target.is_symlink() or not target.is_dir():
            raise GalleryError(f"{shown(target)}: exists and is not a folder")
        clause = foreign_entry(target)
    except OSError as error:
        raise GalleryError(f"{shown(target)}: cannot look inside ({error.strerror}), so it is not replaced") from None
    if clause is not None and force:
        raise GalleryError(
            f"{shown(target)}: not replaced, it is not an earlier introspect gallery ({clause}); "
            "--force replaces only a folder introspect wrote, and nothing was touched"
        )
    if clause is not None:
        raise GalleryError(
            f"{shown(target)}: already exists and is not an introspect gallery ({clause}); choose another folder"
        )
    if not force:
        raise GalleryError(f"{target}: already exists; pass --force to replace it")


# --- one run per folder -------------------------------------------------------------------------

_held: dict[tuple[str, int], list[Any]] = {}  # (lock file, thread) -> [fd, depth]; lets one run re-enter its lock


@contextlib.contextmanager
def claim_output_dir(out_dir: str | os.PathLike[str], *, force: bool) -> Iterator[Path]:
    """Check ``out_dir`` and hold its lock and the stop-signal handlers for the block (analysis and write).

    Raises:
        GalleryError: as :func:`check_output_dir`, or another run is writing ``out_dir``.
    """
    target = Path(out_dir)
    refuse_unsafe_target(target)
    with stop_signals_raise(), output_lock(target):
        check_target(target, force=force)
        yield target


@contextlib.contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target`` (re-entrant in one thread); missing parents are made, and
    removed again when no gallery was written into them."""
    try:
        lock_path = target.parent.resolve() / f".{target.name}.lock"
    except (OSError, RuntimeError) as error:
        raise GalleryError(f"{shown(target)}: cannot be used as the output folder ({error})") from None
    key = (str(lock_path), threading.get_ident())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    with signals_deferred():  # a stop signal now would leave a lock file and made folders behind
        created = _make_parents(target.parent)
        try:
            fd = _acquire(lock_path, target)
        except BaseException:
            _remove_created(created)
            raise
        _held[key] = [fd, 1]
    try:
        yield
    finally:
        with signals_deferred():
            del _held[key]
            _release(fd, lock_path)
            if not os.path.lexists(target):
                _remove_created(created)


def _release(fd: int, lock_path: Path) -> None:
    with contextlib.suppress(OSError):
        if _same_file(fd, lock_path):
            os.unlink(lock_path)  # while still holding it: a run that opened it sees a stale inode and retries
    os.close(fd)


def _make_parents(folder: Path) -> list[Path]:
    missing = [parent for parent in (folder, *folder.parents) if not os.path.lexists(parent)]
    try:
        for parent in reversed(missing):
            parent.mkdir()
    except OSError as error:
        _remove_created(missing)
        raise GalleryError(f"{shown(folder)}: cannot create the folder ({error.strerror})") from None
    return missing


def _remove_created(created: list[Path]) -> None:
    for parent in created:  # deepest first; a folder someone else filled meanwhile stays
        with contextlib.suppress(OSError):
            parent.rmdir()


def _acquire(lock_path: Path, target: Path) -> int:
    """An open, locked descriptor of ``lock_path`` holding our pid."""
    for _ in range(10):
        try:
            fd = os.open(lock_path, LOCK_FLAGS, 0o666)
        except OSError as error:
            where = shown(lock_path.parent)
            raise GalleryError(f"{shown(target)}: cannot write beside it in {where} ({error.strerror})") from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise GalleryError(_busy(target, owner)) from None
        except OSError:
            pass  # a file system without locks (some network mounts): write unlocked rather than not at all
        if _same_file(fd, lock_path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for the message of a run that finds the folder locked
            return fd
        os.close(fd)  # the holder removed the file between our open and flock; lock the new one
    raise GalleryError(_busy(target, ""))


def _busy(target: Path, owner: str) -> str:
    return f"{shown(target)} is being written by another introspect run (pid {owner if owner.isdigit() else 'unknown'})"


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


# --- stop signals -------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived while an output folder was claimed; staging folders are already gone."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class _Guard:
    """The handlers' state: how deep the claims nest, and whether a signal waits or was raised."""

    depth = 0
    critical = 0
    pending: int | None = None
    raised = False
    previous: dict[int, Any] = {}

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        if cls.raised:
            return  # cleanup is under way; a second signal must not cut it short
        if cls.critical:
            cls.pending = signum
            return
        cls.raised = True
        raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT raise :class:`Interrupted` in the block (main thread only), then the
    previous handlers return; a signal the process ignores (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Guard.depth == 0:
        _Guard.previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        for signum, previous in _Guard.previous.items():
            if previous is not signal.SIG_IGN:
                signal.signal(signum, _Guard.handle)
    _Guard.depth += 1
    try:
        yield
    finally:
        _Guard.depth -= 1
        if _Guard.depth == 0:
            for signum, previous in _Guard.previous.items():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            _Guard.pending, _Guard.raised = None, False


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A stop signal in the block is raised only when it ends, so renames and deletions finish."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; a worker's block has nothing to defer
        return
    _Guard.critical += 1
    try:
        yield
    finally:
        _Guard.critical -= 1
    if _Guard.critical == 0 and _Guard.pending is not None and not _Guard.raised:
        signum, _Guard.pending, _Guard.raised = _Guard.pending, None, True
        raise Interrupted(signum)


# --- staging and replacing ----------------------------------------------------------------------


@contextlib.contextmanager
def staging_folder(target: str | os.PathLike[str], *, force: bool = True) -> Iterator[Path]:
    """A new folder beside ``target`` that replaces it if the block succeeds and is removed otherwise.

    The lock is held and ``target`` checked again (an existing one must be replaceable, and with
    ``force`` off must not exist); leftovers of dead runs are removed first. An ``OSError`` in the
    block or while replacing becomes :class:`GalleryError`, with nothing written.
    """
    target = Path(target)
    refuse_unsafe_target(target)
    with stop_signals_raise(), output_lock(target):
        check_target(target, force=force)
        remove_leftovers(target)
        try:
            staging = _sibling(target, "tmp")
            staging.mkdir()  # not mkdtemp: its 0700 would become the gallery's mode
        except OSError as error:
            raise GalleryError(write_failure(target, error)) from None
        try:
            yield staging
            replace_folder(staging, target)
        except OSError as error:
            _remove(staging)
            raise GalleryError(write_failure(target, error)) from None
        except BaseException:
            _remove(staging)
            raise


def write_failure(target: Path, error: OSError) -> str:
    """One sentence for an OS error while writing ``target``."""
    where = f" ({shown(str(error.filename))})" if error.filename else ""
    reason = " ".join(str(error.strerror or error).split())
    return f"{shown(target)}: cannot write the gallery: {reason}{where}; nothing was written"


def replace_folder(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, keeping the mode of a ``target`` it replaces; that one is moved
    aside first and deleted once ``source`` is in place (or moved back if that fails)."""
    retired = None
    try:
        with signals_deferred():  # a signal between the two renames would leave no gallery at all
            if os.path.lexists(target):
                os.chmod(source, stat.S_IMODE(os.stat(target).st_mode))
                retired = _sibling(target, "old")
                os.replace(target, retired)
            try:
                os.replace(source, target)
            except BaseException:
                if retired is not None:
                    os.replace(retired, target)
                raise
    finally:
        if retired is not None and os.path.lexists(retired):
            _remove(retired)


def remove_leftovers(target: Path) -> None:
    """Remove staging and retired folders of ``target`` whose process is gone (a run killed by SIGKILL)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)(?:-[0-9a-z_]+)?")
    leftovers: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False) and not _alive(int(match.group(1))):
                leftovers.append(Path(entry.path))
    for leftover in leftovers:
        _remove(leftover)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (when unsure: yes, so its folders stay)."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: larger than any pid can be
        return False
    except OSError:
        return True  # PermissionError: it exists, under another user
    return True


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _remove(folder: Path) -> None:
    with signals_deferred():
        shutil.rmtree(folder, ignore_errors=True)
