from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Registers the project's system checks (the secret key requirement).
        # Connects the receivers that keep chat.models.AccountNick up to date.
        import chat.signals  # noqa: F401
        import djchat.checks  # noqa: F401
