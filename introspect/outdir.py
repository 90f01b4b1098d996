"""Old import path of the output-folder rules, kept for one release: use :mod:`introspect.report.outdir`."""

from __future__ import annotations

from introspect.report.layout import foreign_entry
from introspect.report.outdir import (
    LOCK_FLAGS,
    STOP_SIGNALS,
    Interrupted,
    check_output_dir,
    check_target,
    claim_output_dir,
    output_lock,
    refuse_unsafe_target,
    remove_leftovers,
    replace_folder,
    shown,
    signals_deferred,
    staging_folder,
    stop_signals_raise,
    write_failure,
)

__all__ = [
    "LOCK_FLAGS",
    "STOP_SIGNALS",
    "Interrupted",
    "check_output_dir",
    "check_target",
    "claim_output_dir",
    "foreign_entry",
    "output_lock",
    "refuse_unsafe_target",
    "remove_leftovers",
    "replace_folder",
    "shown",
    "signals_deferred",
    "staging_folder",
    "stop_signals_raise",
    "write_failure",
]
