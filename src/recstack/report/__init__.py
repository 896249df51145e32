"""Presentation: figures and pages from analysis tables. Nothing here measures."""
