"""Where releases and runs are kept: artifact stores (local, S3/MinIO), checksums, the workspace and registry."""
