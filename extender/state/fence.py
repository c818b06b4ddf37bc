"""Does the state know it went back in time? The write fence, checked like the epoch.

The epoch (P epoch) says whether the state is whole, but a Redis restored from an older
snapshot, or a Sentinel failover to a lagging replica, keeps the epoch of the snapshot: every
write since (binds, the syncer's events) is gone, and the state would be read as whole.
Every write of nodes and pods bumps P fence, in the same script or transaction; every read a
decision makes carries it (and the epoch) from the same atomic round trip. This process
remembers the highest fence it has seen under the current epoch, and the epochs it has seen
replaced: a read issued after the process saw fence F must find at least F (one Redis answers
in order), and an epoch once replaced must not come back. Either means the state went back in
time: it is taken away (P epoch deleted, the reason in P meta), so every process and replica
treats it as not whole, as an emptied Redis: live mode relists (the syncer sees the epoch
gone), offline mode refuses until `load`.

What is not caught: a process that never saw the newer state (started after the rollback)
has nothing to compare with; the syncer's relist (live mode) still restores the truth.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

RETIRED_KEPT = 64
"""Replaced epochs remembered (a few a day at most: each `load` or relist makes one)."""


@dataclass(frozen=True)
class Mark:
    """What the process had seen when a read was sent."""

    changes: int
    highest: int


class FenceWatch:
    """The highest write fence seen under the current epoch, and the epochs seen replaced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.epoch = ""
        self.highest = 0
        self.changes = 0
        self.retired: dict[str, int] = {}  # epoch -> self.changes once it was replaced

    def mark(self) -> Mark:
        """Take before sending a read; pass to check() with what the read found."""
        return Mark(self.changes, self.highest)

    def check(self, mark: Mark, epoch: str, fence: int) -> str | None:
        """None when the read is consistent with what this process saw before sending it;
        else why the state went back in time. An empty epoch is the epoch check's business."""
        if not epoch:
            return None
        with self._lock:
            if epoch == self.epoch:
                if mark.changes == self.changes and fence < mark.highest:
                    return (f"the state went back in time: its write fence is {fence}, this process saw "
                            f"{mark.highest} under the same epoch (Redis restored from an older snapshot or "
                            "failed over to a lagging replica)")
                self.highest = max(self.highest, fence)
                return None
            retired = self.retired.get(epoch)
            if retired is not None:
                if retired <= mark.changes:
                    return ("the state went back in time: its epoch is one this process saw replaced "
                            "(Redis restored from an older snapshot or failed over to a lagging replica)")
                return None  # a read sent before the change and answered after it: not a rollback
            if self.epoch:
                self.changes += 1
                self.retired[self.epoch] = self.changes
                while len(self.retired) > RETIRED_KEPT:
                    self.retired.pop(next(iter(self.retired)))
            self.epoch, self.highest = epoch, fence
            return None
