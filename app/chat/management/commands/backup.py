"""`manage.py backup DIR`: a consistent online backup of the chat into DIR (chat.backup).

playbooks/backup.yml runs it in a one-shot container of the serving release, DIR a directory of
the target mounted for it, and packs DIR into one archive. Its last line is the manifest, as JSON.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chat import backup


class Command(BaseCommand):
    help = (
        "Back up the database (SQLite; PostgreSQL is the deploy's pg_dump's) and the Redis keys "
        "worth keeping into a directory."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "directory", type=Path, help="an existing, empty directory (but for PostgreSQL's dump)"
        )

    def handle(self, *args, **options) -> None:
        try:
            manifest = backup.backup(options["directory"])
        except backup.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(manifest.__dict__, sort_keys=True))
