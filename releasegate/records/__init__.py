"""The gate's records as the core uses them: the gate database opened per transaction (`store`), the audit trail's
events (`audit`), and what an operator does with them: waivers, defect plans, the audit check (`admin`),
retention, backup and restore (`db_admin`). The tables and repositories themselves are in `persistence/`."""
