"""Keeps chat.models.AccountNick in step with the accounts, however they are saved (sign-up, the
admin, createsuperuser, a shell)."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from chat.models import AccountNick


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def record_account_nick(sender, instance, raw=False, **kwargs):
    if not raw:  # loaddata: the fixture brings its own rows
        AccountNick.record(instance)
