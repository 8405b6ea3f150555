"""Erasure-coded document storage across independent nodes."""
