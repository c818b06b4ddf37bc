"""The chart's sentinel cache as its pods run it: files/cache-start.sh with the rendered
redis.conf and environment, three "pods" on three loopback addresses (127.x.y.2-4, ports
6379 and 26379 as in the pod), each a real redis-server and a real Sentinel started by the
script, as the kubelet starts the two containers.

- A fresh install forms: ordinal 0 is the master, the others replicate it, every Sentinel
  knows both replicas and the other two Sentinels.
- The master's Redis dies (SIGKILL) and is restarted at once, as the kubelet restarts a
  container, empty (no persistence): the script does not let it come back as the master
  the Sentinels still name (the replicas would copy its empty data set); it waits for their
  failover and joins the new master as a replica. A key written before the kill is still
  there, read through redis+sentinel:// as the extender reads (extender's connect()).
"""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from extender.local.processes import stop_process, wait_until

from ..support.tools import CHART, rendered_objects

TIMING = ("--set", "cache.mode=sentinel", "--set", "cache.sentinel.downAfterMilliseconds=1000",
          "--set", "cache.sentinel.failoverTimeout=3000")


def free_loopback_trio() -> list[str]:
    """Three loopback addresses whose 6379 and 26379 are free (127.x.y.2-4)."""
    for attempt in range(50):
        base = f"127.{201 + attempt % 50}.{os.getpid() % 250}"
        hosts = [f"{base}.{i}" for i in (2, 3, 4)]
        try:
            for host in hosts:
                for port in (6379, 26379):
                    with socket.socket() as s:
                        s.bind((host, port))
            return hosts
        except OSError:
            continue
    pytest.fail("no free loopback addresses for the sentinel cache")


class Pod:
    """One cache pod: its redis and sentinel containers, started by the chart's script."""

    def __init__(self, i: int, hosts: list[str], env: dict[str, str], conf: str, workdir: Path):
        self.i, self.host = i, hosts[i]
        self.dir = workdir / f"pod-{i}"
        (self.dir / "data").mkdir(parents=True)
        (self.dir / "sentinel").mkdir()
        (self.dir / "redis.conf").write_text(
            conf.replace("bind * -::*", f"bind {self.host}").replace("dir /data", f"dir {self.dir / 'data'}"))
        self.env = {**os.environ, **env, "PEERS": " ".join(hosts), "SELF": self.host,
                    "REDIS_CONF": str(self.dir / "redis.conf"), "SENTINEL_DIR": str(self.dir / "sentinel"),
                    "SENTINEL_BIND": self.host, "POD_NAME": f"cache-{i}"}
        self.redis: subprocess.Popen[bytes] | None = None
        self.sentinel: subprocess.Popen[bytes] | None = None
        self.starts: dict[str, int] = {}

    def start(self, container: str) -> subprocess.Popen[bytes]:
        self.starts[container] = self.starts.get(container, 0) + 1
        log = open(self.dir / f"{container}-{self.starts[container]}.log", "wb")
        proc = subprocess.Popen(["sh", str(CHART / "files" / "cache-start.sh"), container], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)
        setattr(self, container, proc)
        return proc

    def client(self, port: int = 6379) -> redis_py.Redis:
        return redis_py.Redis(host=self.host, port=port, socket_timeout=1, decode_responses=True)

    def role(self) -> dict[str, Any]:
        try:
            return self.client().info("replication")
        except redis_py.RedisError:
            return {}

    def stop(self) -> None:
        stop_process(self.sentinel)
        stop_process(self.redis)


def sentinel_master(pod: Pod) -> str | None:
    try:
        host, _ = pod.client(26379).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "cache")
        return str(host)
    except (redis_py.RedisError, TypeError, ValueError):
        return None


def formed(pods: list[Pod], master: str) -> bool:
    try:
        for pod in pods:
            if sentinel_master(pod) != master:
                return False
            info = pod.client(26379).execute_command("SENTINEL", "MASTER", "cache")
            fields = dict(zip(info[::2], info[1::2])) if isinstance(info, list) else info
            if int(fields["num-slaves"]) < 2 or int(fields["num-other-sentinels"]) < 2:
                return False
        replicas = [p for p in pods if p.host != master]
        return all(p.role().get("master_host") == master and p.role().get("master_link_status") == "up"
                   for p in replicas)
    except (redis_py.RedisError, KeyError):
        return False


def test_chart_start_script_forms_the_cache_and_a_restarted_master_rejoins_as_replica(tmp_path: Path) -> None:
    from extender.state.connect import connect

    objects = rendered_objects(*TIMING)
    statefulset = next(o for o in objects if o["kind"] == "StatefulSet")
    redis_container = next(c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "redis")
    env = {e["name"]: e["value"] for e in redis_container["env"] if "value" in e}
    conf = next(o for o in objects if o["kind"] == "ConfigMap" and "redis.conf" in o["data"])["data"]["redis.conf"]
    assert env["FAILOVER_WAIT"] == "4" and env["QUORUM"] == "2"
    hosts = free_loopback_trio()
    pods = [Pod(i, hosts, env, conf, tmp_path) for i in range(3)]
    try:
        for pod in pods:  # as the kubelet does: both containers of every pod at once
            pod.start("redis")
            pod.start("sentinel")
        wait_until(lambda: formed(pods, hosts[0]), timeout=60, error=AssertionError, interval=0.2,
                   what=f"the cache to form with {hosts[0]} as master ({tmp_path})")

        url = "redis+sentinel://" + ",".join(f"{h}:26379" for h in hosts) + "/cache/0"
        writer = connect(url, timeout=1)
        writer.set("rx:before-kill", "kept")
        assert writer.execute_command("WAIT", 2, 2000) == 2  # on both replicas before the kill

        old = pods[0]
        assert old.redis is not None
        old.redis.kill()  # the container dies ...
        old.redis.wait(10)
        old.start("redis")  # ... and the kubelet restarts it at once, empty

        def new_master() -> str | None:
            master = sentinel_master(pods[1])
            return master if master and master != old.host and formed(pods, master) else None
        master = wait_until(new_master, timeout=60, error=AssertionError, interval=0.2,
                            what=f"a failover away from the restarted master and the cache formed again ({tmp_path})")
        assert old.role().get("role") == "slave" and old.role().get("master_host") == master
        reader = connect(url, timeout=1)
        assert reader.get("rx:before-kill") == b"kept"  # the replicas did not copy an empty master
        assert old.client().get("rx:before-kill") == "kept"  # and the restarted one resynced
        log = (old.dir / "redis-2.log").read_text()
        assert "waiting for their failover" in log
    finally:
        for pod in pods:
            pod.stop()
