"""Analyses: read the store, return DataFrames with known columns. They never print or plot."""
