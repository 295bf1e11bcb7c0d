"""Load samples: what a run's load test leaves for later baseline comparisons, and the baseline a run compares
with (the service's last GO with samples, or a pinned version's last GO)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from persistence.tables import LoadSampleRow, Run
from persistence.upsert import upsert


class LoadSampleRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def replace(self, run_id: str, samples: dict[str, tuple[float, list[float]]]) -> None:
        """The run's samples, per metric (value, per-interval values); a metric no longer measured goes."""
        table = LoadSampleRow.__table__
        for metric, (value, series) in samples.items():
            upsert(self.session, table, {"run_id": run_id, "metric": metric, "value": value, "samples": series},
                   ["run_id", "metric"])
        self.session.execute(delete(LoadSampleRow).where(LoadSampleRow.run_id == run_id,
                                                         LoadSampleRow.metric.not_in(list(samples))))

    def for_run(self, run_id: str) -> dict[str, tuple[float, list[float]]]:
        rows = self.session.execute(select(LoadSampleRow.metric, LoadSampleRow.value, LoadSampleRow.samples)
                                    .where(LoadSampleRow.run_id == run_id))
        return {metric: (value, list(series or [])) for metric, value, series in rows}

    def baseline(self, service: str, exclude_run: str, version: str | None = None) -> dict[str, Any] | None:
        """The latest GO run of `service` (of `version`, if given) other than `exclude_run` that kept load samples:
        its run_id, version and finished_at; None when there is none."""
        has_samples = select(LoadSampleRow.run_id).where(LoadSampleRow.run_id == Run.run_id).exists()
        query = (select(Run.run_id, Run.version, Run.finished_at)
                 .where(Run.service == service, Run.decision == "GO", Run.run_id != exclude_run, has_samples)
                 .order_by(Run.finished_at.desc(), Run.run_id.desc()).limit(1))
        if version is not None:
            query = query.where(Run.version == version)
        row = self.session.execute(query).mappings().first()
        return dict(row) if row else None
