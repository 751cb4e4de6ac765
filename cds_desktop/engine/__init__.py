"""cds_desktop.engine: the CDS method, models, images and the job queue. No Qt, no sockets."""

from .cds import CDSObjective, EditResult, Progress, drain, edit, edits, run_edit, run_edits
from .errors import EditCancelled, EditError, ModelError, NumericalError
from .settings import EditSettings

__all__ = [
    "CDSObjective",
    "EditCancelled",
    "EditError",
    "EditResult",
    "EditSettings",
    "ModelError",
    "NumericalError",
    "Progress",
    "drain",
    "edit",
    "edits",
    "run_edit",
    "run_edits",
]
