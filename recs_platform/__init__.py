"""recs-platform: an MLOps platform for recommender systems.

The library is plain Python and never imports Dagster; the asset graph in `assets/` is a thin
layer over it.
"""

__version__ = "0.1.0"
