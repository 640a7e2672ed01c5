"""Incident reports: rendering, copies, the review form and incident times."""
