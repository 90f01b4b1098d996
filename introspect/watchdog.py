"""The hard stop behind ``--timeout``: for phases that native code keeps from ending.

``--timeout`` first stops a phase with SIGALRM (:func:`introspect.runner.time_limit`), which
raises between Python bytecodes. Code that never returns to Python (a TorchScript loop, a C++
op) or that swallows the exception (a bare ``except:``) keeps running; for those, a phase still
running :data:`GRACE_SECONDS` after its deadline ends the process:

* a timer thread removes this process's staging folders of the gallery being written, prints
  one line and calls ``os._exit(2)``. TorchScript and torch's C++ ops release the GIL while they
  run, so the thread gets to run during a scripted ``while True`` loop (measured: it does);
* C code that holds the GIL (a pathological regular expression, huge integer arithmetic)
  stops every thread of the process, so a small watchdog process, started once and told about
  each phase through a pipe, does the same :data:`BACKSTOP_SECONDS` later and kills the process
  with SIGKILL (there is no way to choose the exit status of a process stuck like that).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

GRACE_SECONDS = 3.0
BACKSTOP_SECONDS = 2.0
EXIT_TIMEOUT = 2

# The watchdog process: it reads commands from its stdin and exits when the pipe closes (the
# parent ended); it kills only its own parent (getppid: it is not reparented yet).
_BACKSTOP_CODE = r"""
import json, os, select, shutil, signal, sys, time
parent, armed, pending = int(sys.argv[1]), {}, b""
while True:
    due = min((item["at"] for item in armed.values()), default=None)
    ready = select.select([0], [], [], None if due is None else max(0.0, due - time.monotonic()))[0]
    if ready:
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit(0)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            command = json.loads(line)
            if "arm" in command:
                command["at"] = time.monotonic() + command["after"]
                armed[command["arm"]] = command
            else:
                armed.pop(command["disarm"], None)
        continue
    if os.getppid() != parent:
        sys.exit(0)
    item = min(armed.values(), key=lambda item: item["at"])
    for prefix in item["staging"]:
        folder, start = os.path.split(prefix)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if name.startswith(start):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    os.write(2, item["line"].encode("utf-8", "replace"))
    os.kill(parent, signal.SIGKILL)
    sys.exit(0)
"""


@contextlib.contextmanager
def hard_limit(seconds: float | None, what: str, *, gallery: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """End the process if the block is still running ``GRACE_SECONDS`` after ``seconds``.

    Args:
        seconds: the phase's time limit; ``None`` or 0 sets no limit.
        what: the phase, for the message (``"loading model.pt"``).
        gallery: the gallery folder being written in the block: this process's staging folders
            beside it are removed before the process ends.
    """
    if not seconds:
        yield
        return
    line = (
        f"introspect: error: {what} was still running {GRACE_SECONDS:g} s after --timeout {seconds:g} s "
        "(native code that cannot be interrupted); stopped\n"
    )
    target = Path(gallery) if gallery is not None else None
    timer = threading.Timer(seconds + GRACE_SECONDS, _end_process, args=(line, target))
    timer.daemon = True
    token = _Backstop.arm(seconds + GRACE_SECONDS + BACKSTOP_SECONDS, line, target)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _Backstop.disarm(token)


def staging_folders(target: Path | None) -> list[Path]:
    """This process's staging folders beside the gallery folder ``target`` (``.NAME.tmp-PID-*``)."""
    if target is None:
        return []
    prefix = f".{target.name}.tmp-{os.getpid()}"
    with contextlib.suppress(OSError):
        return [entry for entry in target.parent.iterdir() if entry.name.startswith(prefix + "-")]
    return []


def _end_process(line: str, target: Path | None) -> None:
    """Runs in the timer thread: no locks of the main thread are needed (raw writes, then ``_exit``)."""
    for folder in staging_folders(target):
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.write(2, line.encode("utf-8", "replace"))
    os._exit(EXIT_TIMEOUT)


class _Backstop:
    """The watchdog process, started on first use and kept for the life of this process."""

    process: subprocess.Popen[bytes] | None = None
    owner = 0
    broken = False
    tokens = itertools.count(1)
    lock = threading.Lock()

    @classmethod
    def arm(cls, after: float, line: str, target: Path | None) -> int | None:
        token = next(cls.tokens)
        # The staging folder does not exist yet: tell the process where this pid's will be.
        staging = [str(target.parent / f".{target.name}.tmp-{os.getpid()}-")] if target is not None else []
        command = {"arm": token, "after": after, "line": line, "staging": staging}
        return token if cls._send(command) else None

    @classmethod
    def disarm(cls, token: int | None) -> None:
        if token is not None:
            cls._send({"disarm": token})

    @classmethod
    def _send(cls, command: dict) -> bool:
        with cls.lock:
            process = cls._started()
            if process is None:
                return False
            try:
                os.write(process.stdin.fileno(), (json.dumps(command) + "\n").encode())
            except OSError:  # the watchdog process is gone: the timer thread still stands
                cls.broken = True
                return False
            return True

    @classmethod
    def _started(cls) -> subprocess.Popen[bytes] | None:
        if cls.broken:
            return None
        if cls.process is None or cls.owner != os.getpid():  # a forked child needs its own watchdog
            try:
                cls.process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _BACKSTOP_CODE, str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                cls.broken = True
                return None
            cls.owner = os.getpid()
            atexit.register(cls._close)
        return cls.process

    @classmethod
    def _close(cls) -> None:
        if cls.process is not None and cls.owner == os.getpid():
            with contextlib.suppress(OSError):
                cls.process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                cls.process.wait(timeout=1)
