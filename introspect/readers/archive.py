"""What a file is, decided from its content as a whole, and bounded reads of its zip records.

A renamed file gets the same treatment as the original: the kind comes from the bytes, never
from the name. A zip's entries are checked before any is read: their declared sizes against
the budget, and against what their compressed bytes can honestly hold (a deflate bomb claims
gigabytes from a few kilobytes).
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import zipfile
from pathlib import Path

from introspect.budget import Budget, BudgetError, format_bytes
from introspect.errors import CheckpointError
from introspect.readers.safetensors_file import looks_like_safetensors

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PICKLE_PROTOCOL_MARK = 0x80
#: Entries a zip may hold: torch writes a handful per tensor, so this is far above honest files.
MAX_ZIP_ENTRIES = 500_000
TORCH_ZIP, TORCH_LEGACY, TORCHSCRIPT, EXPORT = "torch-zip", "torch-legacy", "torchscript", "export"
SAFETENSORS, SAFETENSORS_INDEX, MODEL_FOLDER = "safetensors", "safetensors-index", "model-folder"
#: Bytes read to tell kinds apart: a safetensors header length (8) and the first byte of its JSON.
_HEAD_BYTES = 16


@dataclasses.dataclass(frozen=True)
class Archive:
    """A zip checkpoint whose entries passed the size checks.

    Attributes:
        path: names the archive in messages (for a nested archive, its entry in the outer one).
        source: the file, or the archive's bytes when it was nested in another archive.
        root: the folder every entry sits in (torch writes ``<name>/...``), with its slash.
        sizes: declared uncompressed size of each entry, by name without the root.
        kind: ``torch-zip``, ``torchscript`` or ``export``.
    """

    path: Path
    source: Path | bytes
    root: str
    sizes: dict[str, int]
    kind: str
    zip: zipfile.ZipFile = dataclasses.field(repr=False, compare=False)  # kept open: parsing a big directory is slow

    def has(self, name: str) -> bool:
        return name in self.sizes

    def read(self, name: str) -> bytes:
        """The bytes of entry ``name`` (relative to the root); never more than it declared."""
        if name not in self.sizes:
            raise CheckpointError(f"{self.path}: the archive has no entry {name!r}")
        try:
            with self.zip.open(self.root + name) as handle:
                data = handle.read(self.sizes[name] + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
            raise CheckpointError(f"{self.path}: entry {name!r} cannot be read ({type(error).__name__})") from None
        if len(data) != self.sizes[name]:
            raise CheckpointError(f"{self.path}: entry {name!r} holds a different size than it declares")
        return data


def check_regular_file(path: Path) -> None:
    """Refuse what is missing, a folder, or not a regular file (a FIFO would block forever)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{path}: is a folder without a config.json or safetensors files, not a checkpoint")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: is not a regular file (a pipe, socket or device), so it is not read")


def sniff_kind(path: Path) -> str:
    """``torch-zip``, ``torch-legacy``, ``torchscript``, ``export``, ``safetensors``,
    ``safetensors-index`` (a JSON object, the index of a sharded checkpoint) or ``model-folder``,
    from the content.

    Raises:
        CheckpointError: not a regular file or a model folder, empty, or not a checkpoint at all.
    """
    if path.is_dir() and _is_model_folder(path):
        return MODEL_FOLDER
    check_regular_file(path)
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not head:
        raise CheckpointError(f"{path}: the file is empty")
    if head.startswith(_PNG_SIGNATURE):
        raise CheckpointError(f"{path}: is a PNG image, not a checkpoint")
    if head.startswith(b"PK"):
        return zip_kind(_entry_names(path), path)
    # Before the pickle mark: a header length's low byte may be 0x80; a legacy pickle's ninth byte is never "{".
    if looks_like_safetensors(head, path.stat().st_size):
        return SAFETENSORS
    if head[0] == _PICKLE_PROTOCOL_MARK:  # torch.save's legacy format is a sequence of pickles
        return TORCH_LEGACY
    if head.lstrip().startswith(b"{"):  # its reader checks that it really is an index
        return SAFETENSORS_INDEX
    raise CheckpointError(f"{path}: is not a PyTorch checkpoint (unrecognized content)")


def _is_model_folder(path: Path) -> bool:
    """A folder as ``save_pretrained`` or timm writes it: a config.json or safetensors files."""
    return (path / "config.json").is_file() or any(path.glob("*.safetensors"))


def zip_kind(names: list[str], path: Path) -> str:
    """The kind of a torch zip from all of its entry names: one layout, or an error."""
    root = common_root(names, path)
    inner = {name[len(root) :] for name in names}
    is_export = "archive_format" in inner or any(name.startswith("models/") for name in inner)
    is_script = "constants.pkl" in inner or any(name.startswith("code/") for name in inner)
    is_pickle = "data.pkl" in inner
    if is_export and (is_script or is_pickle):
        raise CheckpointError(f"{path}: mixes the layouts of a torch.export archive and a pickled checkpoint")
    if is_export:
        return EXPORT
    if is_script and is_pickle:
        return TORCHSCRIPT
    if is_pickle:
        return TORCH_ZIP
    raise CheckpointError(f"{path}: is a zip archive but not a PyTorch checkpoint")


def common_root(names: list[str], path: Path) -> str:
    """The one top folder all entries share (with its slash)."""
    if not names:
        raise CheckpointError(f"{path}: is an empty zip archive")
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or not all("/" in name for name in names):
        raise CheckpointError(
            f"{path}: is a zip archive but not a PyTorch checkpoint (its entries are not in one folder)"
        )
    return f"{roots.pop()}/"


def open_archive(path: Path, budget: Budget, source: Path | bytes | None = None) -> Archive:
    """Check every entry's declared size, then describe the archive.

    Args:
        path: the file, or what names a nested archive in messages.
        budget: the limits.
        source: the archive's bytes when it is nested in another one; by default ``path``.

    Raises:
        BudgetError: the entries declare more than the budget, or more than their compressed
            bytes can hold (``budget.max_inflation`` times).
    """
    source = path if source is None else source
    archive = (_sniffed_zip(source) if isinstance(source, Path) else None) or _open_zip(source, path)
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise BudgetError(f"{path}: holds {len(infos)} zip entries, more than the {MAX_ZIP_ENTRIES} allowed")
    root = common_root([info.filename for info in infos], path)
    total = 0
    for info in infos:
        _check_inflation(info, budget, path)
        total += info.file_size
    budget.check_bytes(total, f"{path}: the archive's entries")
    sizes = {info.filename[len(root) :]: info.file_size for info in infos}
    kind = zip_kind([info.filename for info in infos], path)
    return Archive(path=path, source=source, root=root, sizes=sizes, kind=kind, zip=archive)


def _check_inflation(info: zipfile.ZipInfo, budget: Budget, path: Path) -> None:
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise CheckpointError(f"{path}: entry {info.filename!r} is stored but declares two different sizes")
        return
    if info.file_size > budget.max_inflation * max(info.compress_size, 1):
        raise BudgetError(
            f"{path}: entry {info.filename!r} claims {format_bytes(info.file_size)} from "
            f"{format_bytes(info.compress_size)} of compressed bytes (a decompression bomb), so it is not read"
        )


def _seekable(source: Path | bytes) -> Path | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _open_zip(source: Path | bytes, path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(_seekable(source))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(f"{path}: is truncated or corrupted (the zip archive cannot be read)") from None


#: The zip :func:`sniff_kind` parsed last, by the file's identity, for :func:`open_archive` to take over:
#: parsing the directory of 100,000 entries takes 0.7 s, and the reader follows the sniff at once.
_LAST_SNIFFED: dict[tuple, zipfile.ZipFile] = {}


def _entry_names(path: Path) -> list[str]:
    archive = _open_zip(path, path)
    for earlier in _LAST_SNIFFED.values():
        earlier.close()
    _LAST_SNIFFED.clear()
    _LAST_SNIFFED[_identity(path)] = archive
    return archive.namelist()


def _sniffed_zip(path: Path) -> zipfile.ZipFile | None:
    """The open zip of ``path`` from its sniff, handed over once, if the file has not changed since."""
    try:
        key = _identity(path)
    except OSError:
        return None
    archive = _LAST_SNIFFED.pop(key, None)
    for earlier in _LAST_SNIFFED.values():  # another file's: no longer wanted
        earlier.close()
    _LAST_SNIFFED.clear()
    return archive


def _identity(path: Path) -> tuple:
    """What tells a file apart from another or from its own earlier version: device, inode, size, mtime."""
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, str(path.resolve()))
