"""Helpers for testing chunkd and code built on it: the real server process, contract suites."""
