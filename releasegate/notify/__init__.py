"""Notifications of a verdict: `slack` posts the Block Kit message (`slack_message`) through Slack's API
(`slack_api`) or writes it to evidence; `slack_outbox` sends again what was not delivered."""
