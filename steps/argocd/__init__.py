"""The Argo CD API client that watches an Application until it is live at one commit."""
