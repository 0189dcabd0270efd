"""What runs in the pods of the release-data-prep workflow."""

__all__: list[str] = []
