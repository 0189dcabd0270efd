"""What runs in the pods of the release-data-prep workflow.

The top-level modules hold the functions Argo calls through Hera's runner
(``python -m hera.workflows.runner -e steps.<module>:<function>``): ``release``, ``report`` and ``deploy``.
Everything they use sits in a subpackage named for its layer; docs/architecture.md draws the layers.
"""

__all__: list[str] = []
