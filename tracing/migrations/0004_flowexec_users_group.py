"""The ready "flowexec users" group: what a CLI user needs (see executions.permissions.CLI_PERMISSIONS)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from executions.permissions import CLI_GROUP, CLI_PERMISSIONS


def create_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); make them now.
    for label in ("executions", "tracing"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=CLI_GROUP)
    for app_label, codename in CLI_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def drop_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=CLI_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0003_span_received_at_sender_size"),
        ("executions", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, drop_group)]
