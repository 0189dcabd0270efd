"""Hera definitions, manifest rendering and the command line of the GitOps status matrix.

``resources`` builds every resource Argo CD syncs from ``hera_config.yaml``, ``render`` and ``lint`` write
and check them, ``cli`` is ``python -m pipelines``, and ``local`` runs the rendered template on this machine.
"""

__all__: list[str] = []
