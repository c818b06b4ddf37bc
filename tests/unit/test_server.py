"""gunicorn's options for `serve` (extender/service/server.py)."""
from __future__ import annotations

import os

from extender.core.settings import Settings
from extender.service import server


def test_files_written_on_every_request_live_in_ram_where_the_system_has_it(monkeypatch, tmp_path) -> None:
    """The workers' heartbeat files (and the metrics' mmapped files, made in the same place) go
    to /dev/shm: a write to a disk page under writeback waits for the disk, in a request."""
    options = server.gunicorn_options(Settings())
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert options["worker_tmp_dir"] == "/dev/shm" == server.ram_dir()
    monkeypatch.setattr(server, "RAM_DIR", str(tmp_path / "absent"))
    assert server.ram_dir() is None and server.gunicorn_options(Settings())["worker_tmp_dir"] is None
