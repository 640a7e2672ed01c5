"""The running stack: processes, fork server, supervisor, reconciler, deployments, waiting."""
