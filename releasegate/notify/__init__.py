"""Notifications of a verdict: `slack` builds the Block Kit message and posts it or writes it to evidence."""
