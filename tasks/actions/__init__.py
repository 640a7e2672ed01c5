"""Actions that change the estate: address moves, failover, restores, fault injection."""
