"""LatentSky backend: configuration, survey store, ingestion, simulation, services and CLI.

Nothing in here serves web pages; ``app/`` does that, and ``models/`` holds the networks.
"""

__version__ = "0.1.0"
