"""The read side the faces use, where it has logic of its own."""

from __future__ import annotations

from appliance.records import queries
from appliance.store.jobs import Job, JobState


def _job(params: dict, progress: dict) -> Job:
    return Job(id=1, kind="scan", dossier_id=1, params=params, state=JobState.FAILED,
               progress=progress, error_key="scanner.jammed", error_detail="jam")


def test_scan_on_continues_the_paper_the_job_names_and_never_guesses():
    assert queries.retry_paper_id(_job({"paper_id": 3}, {"paper_id": 3})) == 3
    assert queries.retry_paper_id(_job({"source": "adf"}, {"step": "scanning",
                                                          "paper_id": 7})) == 7
    # failed before its first page: a new paper, not one found by creation time
    assert queries.retry_paper_id(_job({"source": "adf"}, {"step": "scanning",
                                                          "paper_id": None})) is None
    assert queries.retry_paper_id(_job({"paper_id": "7"}, {})) is None
