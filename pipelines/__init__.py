"""Hera definitions, manifest rendering and the command line of the GitOps status matrix."""

__all__: list[str] = []
