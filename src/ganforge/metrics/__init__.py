"""Metrics: mode coverage for the 2-D toys (and, later, FID/IS/KID)."""
