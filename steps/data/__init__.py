"""Release data: fetching it, checking its metadata and tables, and building the typed release."""
