"""Hera definitions, manifest rendering and the command line of the GitOps status matrix.

``pipelines`` wires the small clients and decision functions of ``steps`` into Argo resources
(https://argo-workflows.readthedocs.io/en/latest/workflow-templates/): the release-data-prep
WorkflowTemplate, Argo Events triggers, Argo CD Applications and notifications config, all rendered from
``hera_config.yaml`` into ``manifests/`` for Argo CD to sync.
"""

__all__: list[str] = []
