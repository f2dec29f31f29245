"""`manage.py admin_user`: the first administrator (playbooks/admin.yml runs it in the wsgi
container, the password on stdin)."""

import io

import pytest
from django.core.management import CommandError, call_command

PASSWORD = "a long generated password 7f3c"


def admin_user(*args: str, password: str = PASSWORD) -> str:
    out = io.StringIO()
    call_command("admin_user", *args, stdin=io.StringIO(password + "\n"), stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_creates_an_administrator_once_then_leaves_it(django_user_model, client):
    assert admin_user("--username", "operator", "--email", "ops@example.com") == "created"
    again = admin_user("--username", "operator", password="another long password 99")
    assert again == "unchanged"

    user = django_user_model.objects.get(username="operator")
    assert (user.is_staff, user.is_superuser, user.email) == (True, True, "ops@example.com")
    assert user.check_password(PASSWORD)  # the second run left the password alone
    client.force_login(user)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_resets_the_password_only_when_asked(django_user_model):
    admin_user("--username", "operator")

    result = admin_user(
        "--username", "operator", "--reset-password", password="a new passphrase 42"
    )

    assert result == "password reset"
    assert django_user_model.objects.get(username="operator").check_password("a new passphrase 42")


@pytest.mark.django_db
def test_refuses_to_promote_a_chat_account(django_user_model, user):
    with pytest.raises(CommandError, match="exists and is not an administrator"):
        admin_user("--username", user.username)

    user.refresh_from_db()
    assert not user.is_staff
    assert not user.is_superuser


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "password", "refusal"),
    [
        ("operator", "short", "too short"),
        ("op\u0435rator", PASSWORD, "one alphabet"),  # a Cyrillic ie among Latin letters
        ("operator", "", "no password on stdin"),
    ],
)
def test_refuses_what_sign_up_refuses(django_user_model, username, password, refusal):
    with pytest.raises(CommandError, match=refusal):
        admin_user("--username", username, password=password)

    assert not django_user_model.objects.filter(is_superuser=True).exists()
