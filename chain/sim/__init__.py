"""Deterministic simulation of the consensus: n replicas in one process, on logical time,
over a seeded faulty network, with crashes and Byzantine validators; see ``runner.py``."""
