"""Provision the service under test on its own 127.0.0.1 port, and stop it whatever happened.

Dependencies (environment.dependencies) start first, each on its own free port and, with `proxy: true`,
behind the gate's fault-injecting TCP proxy (releasegate.servers.faultproxy); the service reaches one through
{dep_NAME_url}. Every process runs detached (its own session) so that it outlives the provisioning task;
teardown stops each by its process id, after checking the id still belongs to the process this gate started,
and stops every other one even when stopping one fails.

Logs: what the service, its dependencies and the proxies print goes to a private file under the gate's home
(`private_log`), never straight into the evidence, since a service may print a secret at startup. The gate
copies each log into `provision/` in the evidence redacted (`publish_logs`, when the run's processes have been
stopped; a message quoting a log's tail is redacted too), then deletes the private file.

- `running`: what runs (`Environment`, its dependencies and proxies), as XCom carries it
- `values`: the placeholders' values and the service's environment variables
- `provisioning`: `provision`, the setup commands, dependencies and proxies; `health`: waiting until each answers
- `stopping`: `teardown`, stopping one process and its group; `logs`: the private logs and their evidence copies
"""

from releasegate.environment.logs import private_log, publish_logs, read_log
from releasegate.environment.provisioning import child_pythonpath, provision, start_dependencies
from releasegate.environment.running import Environment, RunningDependency, RunningProxy
from releasegate.environment.stopping import ended, stop_dependencies, stop_process, teardown
from releasegate.environment.values import HOST, dependency_values, free_port, placeholders, service_env

__all__ = [
    "HOST", "Environment", "RunningDependency", "RunningProxy", "child_pythonpath", "dependency_values", "ended",
    "free_port", "placeholders", "private_log", "provision", "publish_logs", "read_log", "service_env",
    "start_dependencies", "stop_dependencies", "stop_process", "teardown",
]
