"""Placement reports and failover advice (issue 4).

Floors, as everywhere: the pure core (metrics, advice, render, html) reads plain records and
never imports redis or flask; inventory and topology read Redis; rebalance writes to live
Redis; cli and routes are the thin adapters.
"""
