"""Thin GitHub clients: App authentication, commit statuses, deployments, comments and check runs."""
