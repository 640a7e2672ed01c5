"""Shared fixtures: real sshd (fixtures_ssh), real Prefect stack + lab (fixtures_stack)."""

pytest_plugins = [
    "tests.fixtures_ssh",
    "tests.fixtures_stack",
    "tests.fixtures_netns",
    "tests.fixtures_s3",
]
