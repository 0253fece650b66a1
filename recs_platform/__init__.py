"""recs-platform: an MLOps platform for recommender systems.

The library is plain Python and never imports Dagster; the asset graph in `assets/` is a thin
layer over it.
"""

from recs_platform.memory import avoid_hugepage_stalls

__version__ = "0.1.0"

# Process-wide and needed in every process that holds item x item arrays (graph steps, servers,
# the CLI), each of which imports this package first.
avoid_hugepage_stalls()
