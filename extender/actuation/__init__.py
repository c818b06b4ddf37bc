"""I/O that reads or acts on Redis nodes and pods: the keeper (and, after the restructure, the refresher and rebalance)."""
