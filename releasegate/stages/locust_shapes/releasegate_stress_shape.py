"""A Locust load shape that steps the users up, passed beside the service's locustfile:

    locust -f locustfile.py,releasegate_stress_shape.py ...

Locust uses the first LoadTestShape it finds in any of the files. The steps come from environment
variables the gate sets (plain Python, no import of the gate): RELEASEGATE_STRESS_START_USERS,
RELEASEGATE_STRESS_STEP_USERS, RELEASEGATE_STRESS_STEP_DURATION_S, RELEASEGATE_STRESS_MAX_USERS and
RELEASEGATE_STRESS_SPAWN_RATE. Step k (from 0) runs start + k * step users for step_duration seconds;
the run stops after the step that reaches max_users.
"""

import os

from locust import LoadTestShape


def _number(name, default):
    return float(os.environ.get(name, default))


class ReleasegateStressShape(LoadTestShape):
    start_users = int(_number("RELEASEGATE_STRESS_START_USERS", 2))
    step_users = int(_number("RELEASEGATE_STRESS_STEP_USERS", 2))
    step_duration = _number("RELEASEGATE_STRESS_STEP_DURATION_S", 10)
    max_users = int(_number("RELEASEGATE_STRESS_MAX_USERS", 10))
    spawn_rate = _number("RELEASEGATE_STRESS_SPAWN_RATE", 10)

    def tick(self):
        step = int(self.get_run_time() // self.step_duration)
        users = self.start_users + step * self.step_users
        if users > self.max_users:
            return None
        return users, self.spawn_rate
