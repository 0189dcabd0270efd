"""One module per folder of ``manifests/``: each builds the resources Argo CD syncs from the config."""

#: The label every rendered resource carries.
PART_OF = {"app.kubernetes.io/part-of": "gitops-status-matrix"}
