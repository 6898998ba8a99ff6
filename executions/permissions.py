"""Who may do what through the API, in Django's own permission system."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import DjangoModelPermissions

CANCEL_ANY_EXECUTION = "executions.cancel_execution"
CLI_GROUP = "flowexec users"
# What a CLI user needs beyond being authenticated (reading flows, running them and reading or
# cancelling one's own executions need only that): managing flows and sending its spans.
CLI_PERMISSIONS = (
    ("executions", "add_flow"),
    ("executions", "change_flow"),
    ("tracing", "ingest_spans"),
)


class FlowPermissions(DjangoModelPermissions):
    """Reading needs an authenticated user; creating, changing and deleting need the model permissions."""

    # PUT stores a new version, creating the flow when it is new: it needs add as well as change.
    perms_map = {
        **DjangoModelPermissions.perms_map,
        "PUT": ["%(app_label)s.add_%(model_name)s", "%(app_label)s.change_%(model_name)s"],
    }


def may_cancel(user: Any, execution: Any) -> bool:
    """The creator, staff and holders of executions.cancel_execution may cancel an execution."""
    return bool(
        user.is_staff
        or user.has_perm(CANCEL_ANY_EXECUTION)
        or (execution.created_by_id is not None and execution.created_by_id == user.pk)
    )


def cli_group() -> Any:
    """The "flowexec users" group with exactly CLI_PERMISSIONS (a migration creates it; this keeps it so)."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=CLI_GROUP)
    wanted = [Permission.objects.get(content_type__app_label=app, codename=code) for app, code in CLI_PERMISSIONS]
    group.permissions.set(wanted)
    return group
