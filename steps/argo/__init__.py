"""Thin client of the Argo Server: list, get and submit Workflows."""
