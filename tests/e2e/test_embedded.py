"""`redis-extender run --scheduler kube` (extender/commands/embedded.py with the checkout's
harness/simcluster.py): the simulated cluster on a real etcd + kube-apiserver +
kube-scheduler v1.20, its pending Redis pods placed by the real scheduler through the
extender (filter, prioritize, bind), each shown as its placement is recorded, then the
summary before and after; --once stops serving afterwards."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from extender.local.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_run_with_the_real_kube_scheduler_places_every_pending_pod(kube_bin: Path, tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "extender.cli", "run", "--once", "--scheduler", "kube",
                           "--bind", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=240, cwd=ROOT,
                          env={**os.environ, "KUBE_BIN_DIR": str(kube_bin), "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"kube-scheduler from {kube_bin}" in out or str(kube_bin) in out
    lines = re.findall(r"^\[[#.]+\] (\d+)/(\d+) (redis/\S+) -> (node-\d+) \((zone-\w), region-1\): bound by "
                       r"kube-scheduler$", out, re.M)
    total = int(lines[0][1])
    assert total > 0 and len(lines) == total and len({pod for _, _, pod, *_ in lines}) == total
    assert f"placed {total} of {total} pending Redis pods" in out
    for label in ("single-node shards", "single-zone shards"):
        found = re.search(rf"^\s+{label}\s+(\d+)\s+(\d+)$", out, re.M)
        assert found and int(found.group(1)) > 0 and found.group(2) == "0", out
    assert f"http://127.0.0.1:{port}/report.html" in out
