"""The image status machine: Glance's statuses, and the only changes chute makes between them.

    queued --START_UPLOAD--> saving --ACTIVATE--> active --DEACTIVATE--> deactivated
       ^                        |                   ^                         |
       +--------REQUEUE---------+                   +-------REACTIVATE--------+

    Interoperable import (chute.images.imports):
    queued --STAGE--> uploading --IMPORT_STAGED--> importing --IMPORTED--> active
    queued --IMPORT_WEB--> importing;  uploading/importing --UNSTAGE/IMPORT_FAILED--> queued

REQUEUE is both a failed upload giving the image back and the start-up recovery of an upload a
crash interrupted. Deleting is allowed from every status (the service checks `protected`) and
ends in DELETED. The database applies a transition as a compare-and-swap on `source`, so of two
racing requests exactly one wins; this module only says which changes exist.

`killed` is a Glance status chute never sets, kept for the rules that name it (a killed image
is never listed); formats may change while queued or importing, as in Glance.
Location rows (`image_locations.status`) have a status of their own, see LOCATION_ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# The image properties an import keeps its lock and outcome in (Glance's names): the
# task's id while it runs, the stores still to copy to, the stores it failed for.
IMPORT_LOCK: Final = "os_glance_import_task"
IMPORTING_TO_STORES: Final = "os_glance_importing_to_stores"
FAILED_IMPORT: Final = "os_glance_failed_import"

Status = Literal["queued", "saving", "active", "deactivated", "killed", "deleted", "importing",
                 "uploading"]

QUEUED: Final = "queued"
SAVING: Final = "saving"
ACTIVE: Final = "active"
DEACTIVATED: Final = "deactivated"
KILLED: Final = "killed"
DELETED: Final = "deleted"
IMPORTING: Final = "importing"
UPLOADING: Final = "uploading"

INITIAL: Final = QUEUED
# The statuses in which disk_format and container_format may still change (Glance's rule).
FORMATS_EDITABLE: Final = (QUEUED, IMPORTING)

LocationStatus = Literal["active", "deleted"]
LOCATION_ACTIVE: Final = "active"
LOCATION_DELETED: Final = "deleted"


@dataclass(frozen=True)
class Transition:
    """One allowed change of status; `verb` is how Glance's messages name it."""

    source: Status
    target: Status
    verb: str


START_UPLOAD: Final = Transition(QUEUED, SAVING, "upload")
ACTIVATE: Final = Transition(SAVING, ACTIVE, "activate")
REQUEUE: Final = Transition(SAVING, QUEUED, "requeue")
DEACTIVATE: Final = Transition(ACTIVE, DEACTIVATED, "deactivate")
REACTIVATE: Final = Transition(DEACTIVATED, ACTIVE, "reactivate")
STAGE: Final = Transition(QUEUED, UPLOADING, "stage")
UNSTAGE: Final = Transition(UPLOADING, QUEUED, "unstage")
IMPORT_STAGED: Final = Transition(UPLOADING, IMPORTING, "import")
IMPORT_WEB: Final = Transition(QUEUED, IMPORTING, "import")
IMPORTED: Final = Transition(IMPORTING, ACTIVE, "activate")
IMPORT_FAILED: Final = Transition(IMPORTING, QUEUED, "requeue")

TRANSITIONS: Final = frozenset({START_UPLOAD, ACTIVATE, REQUEUE, DEACTIVATE, REACTIVATE, STAGE,
                                UNSTAGE, IMPORT_STAGED, IMPORT_WEB, IMPORTED, IMPORT_FAILED})
_BY_ENDS: Final[dict[tuple[str, str], Transition]] = {(t.source, t.target): t for t in TRANSITIONS}


def transition(source: str, target: str) -> Transition:
    """The transition from `source` to `target`; ValueError if the machine has none.

    A ValueError, not an image error: asking for a change that does not exist is a bug in
    the caller, never something a client's request can cause.
    """
    found = _BY_ENDS.get((source, target))
    if found is None:
        raise ValueError(f"no image status transition from {source!r} to {target!r}")
    return found
