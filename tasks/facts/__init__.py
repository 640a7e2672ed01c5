"""Read-only facts about the estate: probes, hosts, network checks, liveness."""
