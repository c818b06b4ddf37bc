"""Development-only harness, outside the product: a real etcd + kube-apiserver + kube-scheduler
on loopback (controlplane.py), and the simulated cluster that `redis-extender run` starts on it
from a checkout (simcluster.py). Used by tests/ and benchmarks/; never imported by extender/."""
