"""Callbacks: sample grids, toy-data coverage plots."""
