"""Text for text classifiers: the tokenizer in a model folder, and ``--inputs texts.txt`` as token ids.

Safe by construction: the tokenizer is read with the ``tokenizers`` library from data files only
(``tokenizer.json``, else a WordPiece ``vocab.txt``), never through ``AutoTokenizer`` and never
with code from the folder (a ``tokenizer_config.json`` naming an ``auto_map`` is not read at
all). Every file is a regular file checked against a size cap before it is opened, so no file
decides how much memory or time reading it takes.

The subject records only the tokenizer file's path (``metadata["tokenizer_file"]``), a plain
string that pickles and serializes; the tokenizer itself is loaded on first use and cached.
Text inputs are padded with the pad token to one fixed length; the model gets a forward
pre-hook that passes ``attention_mask = ids != pad`` when its caller passes none, so that every
analyzer running ``model(ids)`` leaves the padding out, as the model's own pipeline would.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from introspect._lazy import lazy_import
from introspect.dataset.base import DataError
from introspect.errors import CheckpointError

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from torch import nn

    from introspect.subject import Subject
else:
    torch = lazy_import("torch")

#: The largest tokenizer file read; real ones are a few MB (large vocabularies reach ~35 MB).
MAX_TOKENIZER_BYTES = 64 << 20
#: Tokenizer files looked for in a model folder, in this order.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
#: Lines of a texts file, and characters per line, at most.
MAX_TEXT_LINES = 1024
MAX_LINE_CHARACTERS = 4096
#: Tokens per text input (padded or truncated to this), unless the model takes fewer positions.
TEXT_SEQUENCE_LENGTH = 64
#: Names a tokenizer may give its padding token, looked up when it declares no padding.
PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")
TEXT_SUFFIXES = (".txt",)
_MASK_MARK = "_introspect_masks_padding"


def tokenizer_file(folder: Path) -> Path | None:
    """The tokenizer file in a model folder (``tokenizer.json``, else ``vocab.txt``), or ``None``."""
    return next((folder / name for name in TOKENIZER_FILES if (folder / name).exists()), None)


def subject_tokenizer(subject: Subject) -> Tokenizer | None:
    """The tokenizer of the subject's model folder, loaded on first use; ``None`` when it has none.

    Raises:
        CheckpointError: the tokenizer file is not a regular file, is too large, or cannot be read.
    """
    path = subject.metadata.get("tokenizer_file")
    if not path:
        return None
    info = _checked_file(Path(path), MAX_TOKENIZER_BYTES, "tokenizer file")
    return _load_tokenizer(str(path), info.st_size, info.st_mtime_ns)


def _checked_file(path: Path, max_bytes: int, what: str) -> os.stat_result:
    """The file's stat after checking it is a regular file (a FIFO or device never is) within ``max_bytes``."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise CheckpointError(f"{path}: the {what} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: the {what} is not a regular file, so it was not read")
    if info.st_size > max_bytes:
        raise CheckpointError(
            f"{path}: the {what} is {info.st_size:,} bytes, more than the {max_bytes:,} introspect reads"
        )
    return info


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str, size: int, mtime_ns: int) -> Tokenizer:
    """The tokenizer in ``path``; the size and time are in the cache key so that a changed file is read again."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise CheckpointError("reading a model folder's tokenizer needs tokenizers (pip install tokenizers)") from None
    try:
        if Path(path).name == "vocab.txt":
            return _wordpiece(path)
        return Tokenizer.from_file(path)
    except Exception as error:  # tokenizers raises its own Exception subclasses for malformed files
        first_line = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a tokenizer file the tokenizers library can read ({first_line})") from None


def _wordpiece(vocab_path: str) -> Tokenizer:
    """A BERT WordPiece tokenizer over ``vocab.txt``: lower-cased, [CLS] text [SEP], as BERT's own is."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece.from_file(vocab_path, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    known = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    tokenizer.add_special_tokens([token for token in known if tokenizer.token_to_id(token) is not None])
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is not None and sep_id is not None:
        tokenizer.post_processor = processors.BertProcessing(("[SEP]", sep_id), ("[CLS]", cls_id))
    return tokenizer


def pad_id(tokenizer: Tokenizer | None, model: nn.Module | None) -> int:
    """The padding token's id: the tokenizer's, else the model config's ``pad_token_id``, else 0."""
    if tokenizer is not None:
        declared = (tokenizer.padding or {}).get("pad_id")
        found = [tokenizer.token_to_id(name) for name in PAD_TOKENS]
        for candidate in (declared, *found):
            if candidate is not None:
                return int(candidate)
    configured = getattr(getattr(model, "config", None), "pad_token_id", None)
    return int(configured) if isinstance(configured, int) else 0


def special_ids(tokenizer: Tokenizer | None) -> set[int]:
    """Ids of the tokenizer's special tokens ([CLS], [SEP], ...); none without a tokenizer."""
    if tokenizer is None:
        return set()
    return {int(index) for index, token in tokenizer.get_added_tokens_decoder().items() if token.special}


def token_texts(tokenizer: Tokenizer | None, ids: Sequence[int]) -> list[str]:
    """Each id as its token's text, or as the id in brackets where there is no tokenizer or no such token."""
    if tokenizer is None:
        return [f"[{int(index)}]" for index in ids]
    return [tokenizer.id_to_token(int(index)) or f"[{int(index)}]" for index in ids]


def read_texts(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file, each one text.

    Raises:
        DataError: the file is not a regular file, is larger than the line caps allow, is not
            UTF-8, or has more than ``MAX_TEXT_LINES`` texts or a line over ``MAX_LINE_CHARACTERS``.
    """
    # UTF-8 takes at most 4 bytes a character; a file past this cannot fit the caps, so it is not read.
    max_bytes = MAX_TEXT_LINES * (MAX_LINE_CHARACTERS * 4 + 2)
    try:
        _checked_file(path, max_bytes, "texts file")
    except CheckpointError as error:
        raise DataError(str(error)) from None
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start} cannot be decoded)") from None
    texts = []
    for number, line in enumerate(content.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARACTERS:
            raise DataError(f"{path}: line {number} has {len(line):,} characters, more than {MAX_LINE_CHARACTERS:,}")
        if line.strip():
            texts.append(line.strip())
    if len(texts) > MAX_TEXT_LINES:
        raise DataError(f"{path}: holds {len(texts):,} texts, more than the {MAX_TEXT_LINES:,} read at once")
    if not texts:
        raise DataError(f"{path}: holds no text (one text per line is expected)")
    return texts


def text_length(model: nn.Module) -> int:
    """Tokens per text input: ``TEXT_SEQUENCE_LENGTH``, or fewer where the model has fewer positions."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        return min(TEXT_SEQUENCE_LENGTH, positions)
    return TEXT_SEQUENCE_LENGTH


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], length: int, padding: int) -> torch.Tensor:
    """(N, length) token ids: each text tokenized (with its special tokens), truncated, padded with ``padding``."""
    # Truncation keeps [SEP] at the end of a long text, which cutting the ids would not. A tokenizer that
    # pads by itself pads with the same id, so its padding is cut or extended to ``length`` below.
    tokenizer.enable_truncation(max_length=length)
    encoded = tokenizer.encode_batch(list(texts))
    ids = torch.full((len(texts), length), padding, dtype=torch.long)
    for row, encoding in enumerate(encoded):
        ids[row, : len(encoding.ids)] = torch.as_tensor(encoding.ids[:length], dtype=torch.long)
    return ids


def mask_padding(model: nn.Module, padding: int) -> None:
    """Give ``model`` an ``attention_mask`` of ``ids != padding`` whenever it is called on ids without one.

    A forward pre-hook, not a wrapper, so layer names and the state_dict stay as they are (and a
    module-level function, so the model still pickles). Applied once; it changes ``model``.
    """
    if getattr(model, _MASK_MARK, False):
        return
    model.register_forward_pre_hook(functools.partial(_padding_mask_hook, padding), with_kwargs=True)
    object.__setattr__(model, _MASK_MARK, True)


def _padding_mask_hook(
    padding: int, module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    ids = args[0] if args else kwargs.get("input_ids")
    if "attention_mask" in kwargs or not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dim() != 2:
        return None
    return args, {**kwargs, "attention_mask": (ids != padding).long()}


def padding_mask(subject: Subject, ids: torch.Tensor) -> torch.Tensor | None:
    """The attention mask the model gets for ``ids``: ``ids != pad`` for text inputs, ``None`` for other probes."""
    if "text_pad_id" not in subject.metadata:
        return None
    return (ids != int(subject.metadata["text_pad_id"])).long()
