"""Datasets that ship with nasc, so the quick start and the tests need no download."""
