"""`manage.py restore DIR`: put a backup made by `manage.py backup` back (chat.backup), then
apply the migrations of the release now deployed.

playbooks/restore.yml runs it in a one-shot container with the app's serving processes stopped.
Its last line says what it did, as JSON.
"""

import json
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from chat import backup


class Command(BaseCommand):
    help = "Restore a backup directory: the database (SQLite), the Redis keys, then the migrations."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory", type=Path, help="a directory `manage.py backup` wrote")

    def handle(self, *args, **options) -> None:
        try:
            manifest, restored, expired = backup.restore(options["directory"])
        except backup.BackupError as error:
            raise CommandError(str(error)) from None
        call_command("migrate", interactive=False, verbosity=0, stdout=self.stdout)
        result = {
            "made_at": manifest.made_at,
            "database": manifest.database,
            "redis_keys_restored": restored,
            "redis_keys_expired": expired,
        }
        self.stdout.write(json.dumps(result, sort_keys=True))
