"""`db`: the gate database's schema (upgrade, downgrade, current), backups, restores and purges."""

from __future__ import annotations

import argparse


def add_db_commands(sub) -> None:
    db = sub.add_parser("db", help="the gate database (RELEASEGATE_DB_URL, else SQLite under RELEASEGATE_HOME)")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="migrate to the newest schema").set_defaults(func=cmd_db_upgrade)
    down = dsub.add_parser("downgrade", help="migrate down to a revision")
    down.add_argument("revision")
    down.set_defaults(func=cmd_db_downgrade)
    dsub.add_parser("current", help="print the schema revision").set_defaults(func=cmd_db_current)
    add_db_admin_commands(dsub)


def add_db_admin_commands(dsub) -> None:
    backup = dsub.add_parser("backup", help="copy the database to FILE (SQLite file, or a pg_dump custom archive)")
    backup.add_argument("file")
    backup.set_defaults(func=cmd_db_backup)
    restore = dsub.add_parser("restore", help="replace the database's contents with a backup FILE")
    restore.add_argument("file")
    restore.set_defaults(func=cmd_db_restore)
    purge = dsub.add_parser("purge", help="delete old runs and their evidence (keeps GO runs and runs an open "
                                          "defect or a live waiver refers to); audit events are kept")
    purge.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    purge.set_defaults(func=cmd_db_purge)


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from persistence.migrate import upgrade
    from releasegate.records.store import database_url

    upgrade(database_url())
    print("database at the newest revision")
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from persistence.migrate import downgrade
    from releasegate.records.store import database_url

    downgrade(database_url(), args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


def cmd_db_current(_args: argparse.Namespace) -> int:
    from persistence.migrate import current
    from releasegate.records.store import database_url

    print(current(database_url()) or "(empty database)")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    from releasegate.records import db_admin

    print(f"backup written: {db_admin.backup(args.file)}")
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    from releasegate.records import db_admin

    db_admin.restore(args.file)
    print(f"database restored from {args.file}")
    return 0


def cmd_db_purge(args: argparse.Namespace) -> int:
    from releasegate.records import db_admin

    print(db_admin.describe_purge(db_admin.purge(args.older_than)))
    return 0
