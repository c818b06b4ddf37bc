"""Placement reports and failover advice (issue 4).

Floors, as everywhere: the pure core (topology, placement, measures, advice, render, html)
reads plain records and never imports redis or flask; the state (state/inventory.py,
state/redis_topology.py) reads the store and the live Redis nodes for it; rebalance applies a
plan through the state's NodeClient; cli, routes and refresher are the thin adapters.
"""
