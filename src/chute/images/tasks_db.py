"""The SQL of an image's tasks (Glance's tasks and task_info): each import, its progress and
outcome, for `GET /v2/images/{id}/tasks`.

Apart from chute.images.db for the same reason as members_db: the image rows' statements stay
in one module; both use the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update

from chute.images.db import utcnow
from chute.images.models import IMAGE_TASKS

T_TASK = IMAGE_TASKS
# Glance's `[task] task_time_to_live` default: a finished task is listed for 48 hours.
TIME_TO_LIVE = timedelta(hours=48)


@dataclass(frozen=True)
class TaskOrigin:
    """Who asked for the task, as Glance records it."""

    owner: str | None
    user_id: str | None
    request_id: str | None


@dataclass(frozen=True)
class Task:
    id: str
    image_id: str
    type: str
    status: str
    owner: str | None
    user_id: str | None
    request_id: str | None
    input: Any
    result: Any
    message: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


class TasksDB:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, task_id: str, image_id: str, task_input: Any, origin: TaskOrigin) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(insert(T_TASK).values(
                id=task_id, image_id=image_id, type="api_image_import", status="processing",
                owner=origin.owner, user_id=origin.user_id, request_id=origin.request_id,
                input=task_input, result=None, message="", created_at=now, updated_at=now,
                expires_at=None))

    def finish(self, task_id: str, result: Any, message: str = "") -> None:
        """success when `result` is given, failure (with `message`) otherwise."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(update(T_TASK).where(T_TASK.c.id == task_id).values(
                status="failure" if result is None else "success", result=result,
                message=message, updated_at=now, expires_at=now + TIME_TO_LIVE))

    def of_image(self, image_id: str) -> list[Task]:
        """The image's tasks not yet expired, oldest first."""
        query = (select(T_TASK).where(T_TASK.c.image_id == image_id,
                                      or_(T_TASK.c.expires_at.is_(None),
                                          T_TASK.c.expires_at >= utcnow()))
                 .order_by(T_TASK.c.created_at))
        with self.engine.connect() as conn:
            return [Task(**row._mapping) for row in conn.execute(query)]
