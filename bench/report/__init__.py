"""Comparison reports built from stored records only: no model is loaded and torch is never imported."""
