"""CPU per pod of filter -> prioritize (on the filter's survivors) -> bind, in process, as
kube-scheduler calls them, through the Flask test client (no HTTP, no Kubernetes API): the
extender's own cost, nearly independent of a busy machine. `redis-extender bench`'s synthetic
cluster (N nodes, N/5 shards x 3 in 10 clusters) in a private redis-server. From the root of a
checkout, or of a copy of another version's package to compare (PYTHONPATH=DIR, cwd DIR):

    python -m benchmarks.bench_inprocess NODES [PODS]      (PROF=tottime: a cProfile too)
"""
import sys, time, orjson, gc
from extender.commands.bench import synthetic, LEVELS
from extender.core import settings as settings_mod
from extender.core.identity import Identifier
from extender.local.localredis import LocalRedis
from extender.state.loader import load_list
from extender.state.store import RedisStore
from extender.service.app import create_app

nodes = int(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 150
doc = synthetic(nodes, max(30, nodes // 5))
node_items = [i for i in doc["items"] if i["kind"] == "Node"]
pending = [{k: v for k, v in i.items() if k not in ("apiVersion", "kind")} for i in doc["items"]
           if i["kind"] == "Pod" and "nodeName" not in i["spec"] and i["metadata"]["namespace"] == "redis"]
for i, p in enumerate(pending):
    p["metadata"].setdefault("uid", f"uid-{i}")
with LocalRedis() as server:
    settings = settings_mod.load({"store.redis_url": server.url, "domains.levels": LEVELS})
    store = RedisStore.from_url(server.url, settings.store.key_prefix, timeout=60)
    load_list(store, doc, Identifier(settings.identity), source="bench")
    app = create_app(settings)
    c = app.test_client()
    names = [n["metadata"]["name"] for n in node_items]
    time.sleep(1.0)
    cpu = {"filter": 0.0, "prioritize": 0.0, "bind": 0.0}
    def one(i, measure):
        p = pending[i % len(pending)]
        b = orjson.dumps({"Pod": p, "Nodes": None, "NodeNames": names})
        t = time.process_time()
        f = c.post("/filter", data=b, content_type="application/json")
        t1 = time.process_time()
        acc = orjson.loads(f.data)["NodeNames"]
        pb = orjson.dumps({"Pod": p, "Nodes": None, "NodeNames": acc})
        t2 = time.process_time()
        r = c.post("/prioritize", data=pb, content_type="application/json")
        t3 = time.process_time()
        scores = orjson.loads(r.data)
        best = max(scores, key=lambda h: h["Score"])["Host"] if len(acc) > 1 else acc[0]
        bb = orjson.dumps({"PodName": p["metadata"]["name"], "PodNamespace": p["metadata"]["namespace"],
                           "PodUID": p["metadata"]["uid"], "Node": best})
        t4 = time.process_time()
        x = c.post("/bind", data=bb, content_type="application/json")
        t5 = time.process_time()
        assert f.status_code == r.status_code == x.status_code == 200
        if measure:
            cpu["filter"] += t1 - t; cpu["prioritize"] += t3 - t2; cpu["bind"] += t5 - t4
    for i in range(20): one(i, False)
    gc.collect()
    import cProfile, pstats, os
    pr = cProfile.Profile() if os.environ.get("PROF") else None
    pr and pr.enable()
    for i in range(20, 20 + rounds): one(i, True)
    if pr:
        pr.disable(); pstats.Stats(pr).sort_stats(os.environ["PROF"]).print_stats(int(os.environ.get("N", "40")))
    print(f"{nodes} nodes: CPU ms per pod " + ", ".join(f"{k} {1000*v/rounds:.2f}" for k, v in cpu.items()) + f", sum {1000*sum(cpu.values())/rounds:.2f}")
