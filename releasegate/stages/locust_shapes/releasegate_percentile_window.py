"""Sets the window of Locust's "current" percentiles, passed beside the service's locustfile.

Locust writes a row per second to <prefix>_stats_history.csv; with --csv-full-history its percentiles
are the *current* ones, over the last CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW seconds (10 by default).
The gate sets RELEASEGATE_PERCENTILE_WINDOW_S to the length of a stress step or soak window, so the row
at the end of a step or window carries the percentiles of exactly that step or window.
"""

import os

import locust.stats

_window = os.environ.get("RELEASEGATE_PERCENTILE_WINDOW_S")
if _window:
    locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = max(1, int(float(_window)))
