"""Errors the engine raises for things a user can fix. Their message is shown as-is."""

from __future__ import annotations


class EditError(ValueError):
    """Bad input or settings: the message names the field, the value and what was expected."""


class ModelError(EditError):
    """A model could not be found or loaded: the message says what, where and how to get it."""


class EditCancelled(Exception):
    """Raised inside run_edit when the caller's cancel flag is set (within one step)."""


class NumericalError(EditError):
    """The optimisation produced NaN/Inf (for example fp16 overflow)."""
