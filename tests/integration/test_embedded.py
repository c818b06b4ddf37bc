"""`redis-extender run` (extender/commands/embedded.py), the main job, bounded by --once: its own
redis-server, the simulated cluster, its pending Redis pods placed through the extender with
each placement shown, and the placement quality before and after. Here with kube-scheduler's
calls replayed in process; tests/e2e/test_embedded.py runs it with the real kube-scheduler."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_run_places_the_simulated_pending_pods_and_shows_before_and_after(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "extender.cli", "run", "--once", "--scheduler", "replay"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = re.findall(r"^\[[#.]+\] (\d+)/(\d+) (redis/\S+) -> (node-\d+) \((zone-\w), region-1\): (.+)$", out, re.M)
    total = int(lines[0][1])
    assert total > 0 and [int(n) for n, *_ in lines] == list(range(1, total + 1))  # a line per pod, in order
    assert len({pod for _, _, pod, *_ in lines}) == total
    assert all("score" in why or "only node" in why for *_, why in lines)
    assert f"placed {total} of {total} pending Redis pods" in out

    def row(label: str) -> tuple[str, str]:
        found = re.search(rf"^\s+{label}\s+(\S+)\s+(\S+)$", out, re.M)
        assert found, f"no {label!r} row in:\n{out}"
        return found.group(1), found.group(2)

    before, after = row("single-node shards")
    assert int(before) > 0 and after == "0"
    before, after = row("single-zone shards")
    assert int(before) > 0 and after == "0"
    assert row("quorum-unsafe clusters")[1] == "0"
    assert row("worst loss \\(one domain\\)")[1] == "0%"
    copies = row("placed Redis copies")
    assert int(copies[1]) == int(copies[0]) + total
    assert "http://127.0.0.1:8888/report.html" in out
    page = re.search(r"before/after page: file://(\S+)", out)
    assert page and Path(page.group(1)).read_text().count('class="panel ') == 2
    assert "no master known" not in out and "live ?" not in out


def test_no_place_leaves_the_pods_pending() -> None:
    done = subprocess.run([sys.executable, "-m", "extender.cli", "run", "--once", "--no-place", "--nodes", "9"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "loaded a simulated cluster: 9 nodes" in done.stdout and "Try it" in done.stdout
    assert "placing the pending" not in done.stdout and not re.search(r"placed \d+ of", done.stdout)
