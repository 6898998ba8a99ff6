"""Make a bench database: migrate, store the bench flows, a superuser token, one finished execution.

    python -m bench.prepare    (DATABASE_URL and the settings module come from the environment)

Prints the API token. Run by bench.stack in a child process with production settings.
"""

from __future__ import annotations

import django


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from bench import flows
    from executions import services, submission

    call_command("migrate", interactive=False, verbosity=0)
    for document in flows.all_flows():
        services.flow_save(source=document)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or user_model.objects.create_superuser(
        "bench", "bench@example.com", None
    )
    token, _ = Token.objects.get_or_create(user=user)
    # A finished execution row: the page-read benchmark copies it to grow the table.
    submission.execution_submit(flow=flows.TWO, inputs=flows.INPUTS, inline=True, client="manage")
    print(token.key)


if __name__ == "__main__":
    main()
