"""payroute's benchmarks: throughput, latency and memory, measured (never asserted by tests).

``payroute bench`` (``make bench``) runs them all from an installed package: ``python -m payroute.benchmarks.run``.
Each module also runs alone, e.g. ``python -m payroute.benchmarks.routing_env``.
"""
