"""The security-incident plan's own work: holds on hosts and evidence collection."""
