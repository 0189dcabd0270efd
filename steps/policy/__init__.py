"""Pure decisions, no I/O: what to tell GitHub for which state, when a deployment is done, what a summary says."""
