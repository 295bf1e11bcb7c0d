# The gate's Airflow image: Airflow 3.3 with the releasegate core, its tools and promtool/amtool.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus prometheus-alertmanager \
 && rm -rf /var/lib/apt/lists/*
USER airflow
# The wheel carries its templates, Semgrep rules and Alembic migrations as package data (pyproject.toml).
COPY --chown=airflow:root pyproject.toml README.md /opt/releasegate/
COPY --chown=airflow:root releasegate /opt/releasegate/releasegate
COPY --chown=airflow:root persistence /opt/releasegate/persistence
RUN pip install --no-cache-dir "/opt/releasegate"  # its dependencies include the Celery provider
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
