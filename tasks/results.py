"""One result family: every result of a command, a transfer, a driver or API call and a
probe says ``ok`` — the one word for success, whatever else it records.

``CommandResult`` (ssh), ``DriverResult`` (link and DNS drivers), ``RestoreResult``,
``ProbeResult`` (service health), ``HostProbe``, ``LinkProbe`` and the executor's
``StepResult`` (one per action of a plan, any kind) all satisfy :class:`Result`.

>>> from tasks.facts.probes import ProbeResult
>>> isinstance(ProbeResult(target="web", check="tcp", healthy=True), Result)
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Result(Protocol):
    @property
    def ok(self) -> bool: ...
