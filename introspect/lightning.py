"""PyTorch Lightning checkpoints: the facts its header holds besides the weights.

Lightning saves ``state_dict`` (its LightningModule's, so the keys carry the attribute's prefix,
``model.`` for instance, which :func:`~introspect.checkpoint.load_state_into` strips when the
architecture needs it), ``epoch``, ``global_step``, ``hyper_parameters`` and the optimizer and
scheduler states, which are not analyzed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from introspect.validate import FieldError, check_plain

VERSION_KEY = "pytorch-lightning_version"
#: Hyper-parameters shown: enough for any real run, few enough for a page header.
MAX_HYPERPARAMETERS = 100


def is_lightning(payload: Mapping[str, Any]) -> bool:
    """Whether a ``torch.save`` dict is a Lightning checkpoint."""
    return VERSION_KEY in payload or ("state_dict" in payload and "global_step" in payload and "epoch" in payload)


def lightning_details(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """``epoch``, ``global_step``, the Lightning version and plain hyper-parameters, or ``None``."""
    if not is_lightning(payload):
        return None
    details: dict[str, Any] = {
        key: payload[key]
        for key in ("epoch", "global_step")
        if isinstance(payload.get(key), int) and not isinstance(payload.get(key), bool)
    }
    if isinstance(payload.get(VERSION_KEY), str):
        details["lightning"] = payload[VERSION_KEY][:40]
    hyperparameters = _plain_hyperparameters(payload.get("hyper_parameters"))
    return {"details": details, "hyperparameters": hyperparameters} if hyperparameters else {"details": details}


def _plain_hyperparameters(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    kept = {str(k): v for k, v in list(value.items())[:MAX_HYPERPARAMETERS] if isinstance(k, str)}
    try:
        check_plain(kept, "hyper_parameters", max_items=10_000, count_tensor_elements=True)
    except FieldError:
        return {}
    return {k: v for k, v in kept.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
