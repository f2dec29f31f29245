"""`manage.py release`: what a new release must pass before any of its processes serves.

The deploy runs it once per release, in a one-shot container of the new image with the new
environment, while the previous release is still serving: the settings are imported (a value the
app rejects ends it here, with the app's own message), the deploy checks run at ERROR level, and
only then are the migrations applied. Migrations must stay compatible with the release that is
still serving until the new one has replaced it.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the deploy checks, then apply the migrations (a deploy's release step)."

    def handle(self, *args, **options) -> None:
        common = {"verbosity": options["verbosity"], "stdout": self.stdout, "stderr": self.stderr}
        call_command("check", deploy=True, fail_level="ERROR", **common)
        call_command("migrate", interactive=False, **common)
