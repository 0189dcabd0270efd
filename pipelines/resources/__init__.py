"""One module per folder of ``manifests/``: each builds the resources Argo CD syncs from the config."""
