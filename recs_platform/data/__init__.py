"""Event schema, landing-zone IO, MovieLens import, synthetic data and raw ingestion."""
