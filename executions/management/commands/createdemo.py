"""Create (or reuse) the demo user with an API token, for the quick start and tests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token

from executions.permissions import cli_group


class Command(BaseCommand):
    help = (
        "Create a staff superuser (or, with --cli-user, a plain member of the \"flowexec users\" group) with a "
        "known password and print its API token (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument(
            "--cli-user", action="store_true", help="no staff rights: only what a CLI user needs"
        )

    def handle(self, *args: Any, username: str, password: str, cli_user: bool, **options: Any) -> None:
        admin = not cli_user
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": admin, "is_superuser": admin}
        )
        if created:
            user.set_password(password)
            user.save()
        # The demo user is also in the CLI group, so it holds every permission a CLI user needs
        # even if its superuser flag is taken away.
        user.groups.add(cli_group())
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
