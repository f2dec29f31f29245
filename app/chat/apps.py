from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Registers the project's system checks (the secret key requirement).
        import djchat.checks  # noqa: F401
