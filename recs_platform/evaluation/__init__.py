"""One evaluation path for every recommender: metrics, reports and run files."""
