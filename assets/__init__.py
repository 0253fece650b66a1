"""Thin Dagster definitions over the ``recs_platform`` library, and the graph commands."""

import warnings

# The project uses a few of Dagster's beta and preview APIs on purpose (observable source assets,
# backfill policies, pandera types, data versions). Their notices are addressed to us, not to
# whoever runs the graph, so every entry point that loads these definitions silences them. By
# message: the categories live in Dagster, which the light commands (status, serve) never import.
warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)\b")
