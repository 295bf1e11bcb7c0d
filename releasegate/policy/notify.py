"""The `notify` section: where the verdict is announced."""

from __future__ import annotations

from pydantic import Field

from releasegate.policy.spec import _Spec


class Slack(_Spec):
    channel: str = Field(description="Channel id or name, e.g. #releases.")
    connection_id: str = Field("slack_api_default", description="Airflow connection holding the bot token.")
    report_url: str | None = Field(
        None, description="Link to the report, may use {service} {version} {run_id}; default: in Airflow the "
                    "report the plugin serves, else the report's path.")


class Notify(_Spec):
    slack: Slack | None = None
