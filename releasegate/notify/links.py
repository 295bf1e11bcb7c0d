"""Where a verdict can be looked at: the Airflow run's page and the report the project's Airflow plugin serves
(``plugins/releasegate_plugin.py``: ``/releasegate/runs/<dag run id>/report``, for signed-in users), when the
gate runs in Airflow and Airflow knows its own address; otherwise no link (never a guessed one).

Airflow's address is its ``[api] base_url`` (``AIRFLOW__API__BASE_URL``): the URL people open the UI at, the one
Airflow itself builds run links from. The run is the task's own (``AIRFLOW_CTX_DAG_ID`` and
``AIRFLOW_CTX_DAG_RUN_ID``, which Airflow exports into a running task's environment) and must be the gate run's
(``<dag_id>__<dag run id>``, as the DAG opens it): a CLI run inside some other task gets no link.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

BASE_URL_ENV = "AIRFLOW__API__BASE_URL"


def airflow_base_url() -> str | None:
    """Airflow's ``[api] base_url``: from Airflow's configuration inside an Airflow process, else the
    environment variable; None when unset or not an http(s) URL."""
    value = os.environ.get(BASE_URL_ENV, "")
    if "airflow" in sys.modules:  # a task or a callback: airflow.cfg counts too
        try:
            from airflow.configuration import conf

            value = conf.get("api", "base_url", fallback=None) or value
        except Exception:  # noqa: BLE001, S110 (a configuration that cannot be read: no link, never a wrong one)
            pass
    value = (value or "").strip()
    return value.rstrip("/") if value.startswith(("http://", "https://")) else None


def dag_run_url(dag_id: str, dag_run_id: str, task_id: str | None = None) -> str | None:
    """The Airflow UI's page of a DAG run (of one of its tasks, with ``task_id``), or None without a base URL."""
    base = airflow_base_url()
    if base is None or not dag_id or not dag_run_id:
        return None
    url = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(dag_run_id, safe=':+')}"
    return f"{url}/tasks/{quote(task_id, safe='')}" if task_id else url


def gate_run_url(run_id: str) -> str | None:
    """The Airflow run page of the gate run ``run_id`` when this process is that run's task; else None."""
    ids = _task_run(run_id)
    return dag_run_url(*ids) if ids else None


def gate_report_url(run_id: str) -> str | None:
    """The report of the gate run ``run_id`` as the plugin serves it, when this process is that run's task and
    Airflow's base URL is known; else None."""
    ids, base = _task_run(run_id), airflow_base_url()
    if ids is None or base is None:
        return None
    return f"{base}/releasegate/runs/{quote(ids[1], safe=':+')}/report"


def _task_run(run_id: str) -> tuple[str, str] | None:
    """(dag id, dag run id) of the Airflow task this process is, when it is the gate run ``run_id``'s."""
    dag_id, dag_run_id = os.environ.get("AIRFLOW_CTX_DAG_ID", ""), os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "")
    if not dag_id or not dag_run_id or run_id != f"{dag_id}__{dag_run_id}":
        return None
    return dag_id, dag_run_id
