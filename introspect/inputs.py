"""The user's own inputs as the probe: ``--inputs a.png b.png``, a folder of images, an ImageFolder, a tensor file,
or for a text classifier with a tokenizer in its folder, a ``.txt`` file of texts, one per line.

"Explain these three pictures" is the first thing a user asks. Each path is opened as a small
dataset (image files are converted to the model's channels and resized to its input size), the
checkpoint's own preprocessing is applied as in a dataset pass, and the result replaces the probe.
An ImageFolder's class names give labels where they are the checkpoint's class names. Texts are
tokenized by the folder's tokenizer and padded to one length (:mod:`introspect.text`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.dataset.base import DataError, DataSource, image_transform
from introspect.dataset.preprocess import Preprocessing
from introspect.dataset.sources import IMAGE_SUFFIXES, batches, open_source
from introspect.probes import token_vocabulary
from introspect.text import (
    TEXT_SUFFIXES,
    encode_texts,
    mask_padding,
    pad_id,
    read_texts,
    subject_tokenizer,
    text_length,
)

if TYPE_CHECKING:
    import torch

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: Files named in a probe note before "and N more".
NAMED_FILES = 3


class ImageFiles:
    """Image files as a map-style dataset of ``(pixels in [0, 1], -1)``, converted and resized for the model."""

    def __init__(self, paths: Sequence[Path], image_shape: tuple[int, int, int]) -> None:
        self.paths = list(paths)
        self.transform = image_transform(self.paths[0] if self.paths else Path(), image_shape, "image inputs")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return self.transform(image), -1
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise DataError(f"{path}: not a readable image ({error})") from None


def with_inputs(subject: Subject, paths: Sequence[str | os.PathLike[str]], max_inputs: int) -> Subject:
    """``subject`` with the inputs at ``paths`` as its probe (at most ``max_inputs`` of them).

    Raises:
        DataError: a path that cannot be read, inputs the model cannot take, or no inputs at all.
    """
    if subject.model is None:
        raise DataError("--inputs needs a model to explain, and this checkpoint has only weights")
    texts = TextInputs.for_subject(subject) if any(_is_text(Path(path)) for path in paths) else None
    inputs, labels, names = [], [], []
    for path in map(Path, paths):
        room = max_inputs - sum(len(batch) for batch in inputs)
        if room <= 0:
            break
        if texts is not None and _is_text(path):
            inputs.append(texts.read(path, room))
            labels.append(None)
        else:
            _read_data(subject, path, room, inputs, labels)
        names.append(path.name)
    if not inputs:
        raise DataError("--inputs found no inputs in " + ", ".join(map(str, paths)))
    probe = torch.cat(inputs)
    if texts is not None:
        subject = texts.applied_to(subject)
    _check_the_model_takes(subject, probe)
    known = all(part is not None for part in labels)
    shown = ", ".join(names[:NAMED_FILES]) + (
        f" and {len(names) - NAMED_FILES} more" if len(names) > NAMED_FILES else ""
    )
    note = f"from {shown} via --inputs" + ("" if known else ", without labels")
    if texts is not None:
        note += f"; texts as {probe.shape[1]} tokens each, padding masked"
    return dataclasses.replace(
        subject,
        probe_inputs=probe,
        probe_labels=torch.cat(labels) if known else None,
        probe_is_synthetic=False,
        metadata={**subject.metadata, "probe_note": note},
    )


def _read_data(subject: Subject, path: Path, room: int, inputs: list, labels: list) -> None:
    """Append up to ``room`` inputs of an image, image folder or data file (and their labels) to the lists."""
    source = _open(path, subject.task.image_shape)
    prepare = Preprocessing(subject.task, source)
    for batch in batches(source, batch_size=64, limit=room):
        batch = prepare(batch)
        inputs.append(batch.inputs)
        labels.append(_model_labels(batch.labels, source, subject.task.class_names))


def _is_text(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES and not path.is_dir()


@dataclasses.dataclass(frozen=True)
class TextInputs:
    """How a text classifier's texts become token ids: its tokenizer, a fixed length and the pad id."""

    tokenizer: Any
    length: int
    padding: int

    @classmethod
    def for_subject(cls, subject: Subject) -> TextInputs:
        """The subject's tokenizer and lengths.

        Raises:
            DataError: the model takes no token ids, or its folder has no tokenizer.
            CheckpointError: the folder's tokenizer file is unsafe or unreadable.
        """
        if subject.model is None or token_vocabulary(subject.model) is None:
            raise DataError("--inputs with a .txt file needs a text model (one that takes token ids)")
        tokenizer = subject_tokenizer(subject)
        if tokenizer is None:
            raise DataError(
                "--inputs with a .txt file needs a tokenizer (tokenizer.json or vocab.txt) in the model folder, "
                "and this checkpoint has none"
            )
        return cls(tokenizer, text_length(subject.model), pad_id(tokenizer, subject.model))

    def read(self, path: Path, room: int) -> torch.Tensor:
        """At most ``room`` texts of ``path`` as (N, length) token ids."""
        return encode_texts(self.tokenizer, read_texts(path)[:room], self.length, self.padding)

    def applied_to(self, subject: Subject) -> Subject:
        """``subject`` with its model masking the padding and its task taking ``length`` tokens."""
        mask_padding(subject.model, self.padding)
        task = dataclasses.replace(subject.task, input_shape=(self.length,))
        return dataclasses.replace(subject, task=task, metadata={**subject.metadata, "text_pad_id": self.padding})


def _open(path: Path, image_shape: tuple[int, int, int] | None) -> DataSource:
    """An image file, a flat folder of images, or anything ``--data`` takes (an ImageFolder, .npy, .pt)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    images = _image_files(path)
    if images is None:
        return open_source(path, image_shape=image_shape)
    if image_shape is None:
        raise DataError(f"{path}: image inputs need a model that takes images")
    return DataSource(name=path.name, split="", dataset=ImageFiles(images, image_shape), resized_on_read=True)


def _image_files(path: Path) -> list[Path] | None:
    """The image files ``path`` names: itself, or a folder's own images when it has no class folders."""
    if path.is_file():
        return [path] if path.suffix.lower() in IMAGE_SUFFIXES else None
    entries = sorted(path.iterdir())
    if any(entry.is_dir() for entry in entries):
        return None  # an ImageFolder tree: one folder per class
    return [entry for entry in entries if entry.suffix.lower() in IMAGE_SUFFIXES]


def _model_labels(labels: Any, source: DataSource, class_names: Sequence[str]) -> torch.Tensor | None:
    """A batch's labels as the model's class indices: an ImageFolder's by class name, others as they are."""
    if labels is None:
        return None
    if not source.class_names:
        return labels
    if not set(source.class_names) <= set(class_names):
        return None  # its folders are not the checkpoint's classes: no labels rather than wrong ones
    positions = torch.as_tensor([list(class_names).index(name) for name in source.class_names])
    return positions[labels.long()]


def _check_the_model_takes(subject: Subject, probe: torch.Tensor) -> None:
    expected = subject.task.input_shape
    if expected is not None and tuple(probe.shape[1:]) != tuple(expected):
        raise DataError(f"--inputs gave inputs of shape {tuple(probe.shape[1:])}; the model takes {tuple(expected)}")
