"""Named leases: a role only one relayer holds at a time (the leader: ingestion and settlement)."""

from __future__ import annotations

import time

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bme.relayer.store.base import LEASES, StoreBase


class LeaseStore(StoreBase):
    def hold_lease(self, name: str, ttl_s: float, now: float | None = None) -> bool:
        """Takes or renews the lease `name` for this relayer; False while another relayer holds it."""
        now = time.time() if now is None else now
        with self.engine.begin() as c:
            res = c.execute(
                update(LEASES)
                .where(LEASES.c.name == name, or_(LEASES.c.owner == self.owner, LEASES.c.until < now))
                .values(owner=self.owner, until=now + ttl_s)
            )
            if res.rowcount:
                return True
            if c.execute(select(LEASES.c.name).where(LEASES.c.name == name)).first() is not None:
                return False
        try:
            with self.engine.begin() as c:
                c.execute(insert(LEASES).values(name=name, owner=self.owner, until=now + ttl_s))
        except IntegrityError:
            return False  # another relayer created it first
        return True
