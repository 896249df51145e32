"""Collectors: take what to measure, return plain records. They never print or plot."""
