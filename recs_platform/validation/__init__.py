"""pandera schemas for the datasets, and freezing validated datasets to versioned Parquet."""
