"""What a case's pytest reports carry and mean: its record, the phase it came from, and
which kind of failure it had (an error or a failure; see comfytest.errors.FAILURE_KINDS)."""

from __future__ import annotations

import pytest

from comfytest.defaults import Status
from comfytest.errors import ERROR_KINDS
from comfytest.reports.record import CaseRecord
from comfytest.runner import CaseResult

__all__ = [
    "PHASE_ATTRIBUTE",
    "RECORD_ATTRIBUTE",
    "as_error",
    "is_infrastructure",
    "mismatch_kind",
    "phase_of",
    "record_of",
]

#: The test report attribute that carries a case's record (a plain dict, so xdist sends it).
RECORD_ATTRIBUTE = "comfytest"


def record_of(report: pytest.TestReport | pytest.CollectReport) -> CaseRecord | None:
    """The record of the case this report is about; None for anything but a case."""
    data = getattr(report, RECORD_ATTRIBUTE, None)
    return CaseRecord.from_dict(data) if isinstance(data, dict) else None


#: The attribute that keeps the phase of a report shown as a setup error (see ``as_error``).
PHASE_ATTRIBUTE = "comfytest_phase"


def phase_of(report: pytest.TestReport) -> str:
    """The phase a case's report really came from: "call" also for a judged case shown as
    an error (``as_error``)."""
    return str(getattr(report, PHASE_ATTRIBUTE, report.when))


def as_error(report: pytest.TestReport, record: CaseRecord) -> None:
    """A case that could not be tested or judged (a broken workflow, a lost server, a
    baseline problem) is a pytest *error*, not a failure. pytest makes every exception of
    the test itself a failure, so its call report is shown as its setup's: the terminal
    says ERROR, JUnit writes <error>, and the session still reads it as the call."""
    if report.when == "call" and report.failed and record.kind in ERROR_KINDS:
        setattr(report, PHASE_ATTRIBUTE, "call")
        report.when = "setup"


def is_infrastructure(report: pytest.TestReport) -> bool:
    """A case that errored because it could not be tested (a lost or unreachable server)."""
    record = record_of(report)
    return report.failed and bool(record and record.kind == "infrastructure")


def mismatch_kind(result: CaseResult) -> str:
    """A regression when an output differs or was not produced; a baseline problem when
    the only trouble is missing or unreadable baselines; broken when the server sent no
    output to judge, or one that is no image."""
    bad = [v for v in result.verdicts if not v.ok]
    if any(v.status == Status.FAILED and not (v.baseline_corrupt or v.unreadable) for v in bad):
        return "regression"
    if not bad or any(v.unreadable for v in bad):
        return "broken"
    return "baseline"
