"""`manage.py admin_user`: the site's first administrator, its password read from stdin.

playbooks/admin.yml runs it in the wsgi container with the password generated on the target (never
an argument, an environment variable or a log line). It creates the account once; after that it
leaves it alone, unless asked to set the password again (--reset-password). Its last line says
what it did: "created", "unchanged" or "password reset".
"""

import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from chat.forms import SignUpForm


class Command(BaseCommand):
    help = "Create the administrator account (password on stdin), or leave it as it is."
    stealth_options = ("stdin",)  # call_command(..., stdin=...) in tests, as createsuperuser

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="set the password of an existing administrator to the one given",
        )

    def handle(self, *args, **options) -> None:
        username, email = options["username"], options["email"]
        password = options.get("stdin", sys.stdin).readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on stdin")
        users = get_user_model()
        with transaction.atomic():
            user = users.objects.select_for_update().filter(username=username).first()
            if user is not None and not (user.is_staff and user.is_superuser):
                raise CommandError(
                    f"an account named {username!r} exists and is not an administrator: "
                    "choose another name, or make it one in the admin"
                )
            if user is not None and not options["reset_password"]:
                self.stdout.write("unchanged")
                return
            if user is None:
                # The sign-up form's rules: the name is a nick like any other (length, one
                # alphabet, no look-alike of a taken one), the password passes the validators.
                form = SignUpForm(
                    data={"username": username, "password1": password, "password2": password}
                )
                if not form.is_valid():
                    raise CommandError(
                        "refused: " + " ".join(m for ms in form.errors.values() for m in ms)
                    )
                user = form.save(commit=False)
                user.email, user.is_staff, user.is_superuser = email, True, True
                user.save()
                self.stdout.write("created")
                return
            try:
                validate_password(password, user)
            except ValidationError as error:
                raise CommandError("refused: " + " ".join(error.messages)) from None
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write("password reset")
