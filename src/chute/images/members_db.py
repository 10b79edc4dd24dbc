"""The SQL of image members (Glance's image_members): who a shared image is shared with.

Apart from chute.images.db so that the image rows' statements and their compare-and-swap
rules stay in one module and sharing in another; both use the same engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.sql.elements import ColumnElement

from chute.errors import Conflict
from chute.images.db import utcnow
from chute.images.models import IMAGE_MEMBERS, IMAGES

T_MEM = IMAGE_MEMBERS


@dataclass(frozen=True)
class Member:
    image_id: str
    member: str
    status: str
    created_at: datetime
    updated_at: datetime


class MembersDB:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self, image_id: str, member: str | None = None) -> list[Member]:
        """The image's members (only `member`'s row when given), oldest first."""
        query = select(T_MEM).where(T_MEM.c.image_id == image_id)
        if member is not None:
            query = query.where(T_MEM.c.member == member)
        with self.engine.connect() as conn:
            return [Member(r.image_id, r.member, r.status, r.created_at, r.updated_at)
                    for r in conn.execute(query.order_by(T_MEM.c.id))]

    def get(self, image_id: str, member: str) -> Member | None:
        found = self.list(image_id, member)
        return found[0] if found else None

    def add(self, image_id: str, member: str, status: str) -> Member:
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(T_MEM).values(image_id=image_id, member=member,
                                                  status=status, created_at=now, updated_at=now))
        except SQLIntegrityError:
            raise Conflict(f"Member {member} already exists for image {image_id}.") from None
        return Member(image_id, member, status, now, now)

    def set_status(self, image_id: str, member: str, status: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(update(T_MEM).where(T_MEM.c.image_id == image_id,
                                                      T_MEM.c.member == member)
                                  .values(status=status, updated_at=utcnow()))
        return result.rowcount == 1

    def remove(self, image_id: str, member: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(T_MEM).where(T_MEM.c.image_id == image_id,
                                                      T_MEM.c.member == member))
        return result.rowcount == 1


def listed_for(project: str, statuses: list[str] | None, community: bool
               ) -> ColumnElement[bool]:
    """The images `project` sees in a list (Glance's rules for a non-admin): its own,
    public ones, community ones when asked for (`community`), and shared ones it is a
    member of with one of `statuses` (None: any)."""
    member = [T_MEM.c.image_id == IMAGES.c.id, T_MEM.c.member == project]
    if statuses is not None:
        member.append(T_MEM.c.status.in_(statuses))
    shared = and_(IMAGES.c.visibility == "shared", exists().where(*member))
    clauses = [IMAGES.c.owner == project, IMAGES.c.visibility == "public", shared]
    if community:
        clauses.append(IMAGES.c.visibility == "community")
    return or_(*clauses)
