"""Verification: every observed flow checked against a set of policies."""
