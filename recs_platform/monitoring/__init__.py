"""Monitoring above the registry: dataset statistics, drift and training/serving skew, raw-layer health."""
