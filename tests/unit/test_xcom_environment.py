"""What the provision task hands to the next tasks goes through Airflow's database: no secret in it."""

from releasegate.airflow_glue import for_xcom
from releasegate.environment import Environment

CANARY = "canary-Xc0m-55aa91"


def test_the_environment_reaches_xcom_without_its_secrets():
    env = Environment(host="127.0.0.1", port=5000, base_url="http://127.0.0.1:5000", pid=1, pid_created=0.0,
                      log_path="/tmp/service.log",
                      env={"API_TOKEN": CANARY, "DATABASE_URL": f"postgresql://app:{CANARY}@127.0.0.1/app",
                           "PORT": "5000"})
    data = for_xcom(env)
    assert CANARY not in repr(data)
    assert data["env"]["PORT"] == "5000" and data["pid"] == 1
    assert Environment.model_validate(data).base_url == "http://127.0.0.1:5000"
