"""Drop the single-column indexes on flow_name and created_by: the list indexes start with those columns.

Every index is written on each execution's INSERT. Dropped by name (DROP INDEX, no table rebuild on
SQLite); PostgreSQL also has a `_like` index for the varchar column.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FLOW_NAME_INDEX = "executions_execution_flow_name_ce953d34"
CREATED_BY_INDEX = "executions_execution_created_by_id_0dcb51e0"


def _statements(vendor: str) -> tuple[list[str], list[str]]:
    drop = [f'DROP INDEX IF EXISTS "{FLOW_NAME_INDEX}"', f'DROP INDEX IF EXISTS "{CREATED_BY_INDEX}"']
    create = [
        f'CREATE INDEX "{FLOW_NAME_INDEX}" ON "executions_execution" ("flow_name")',
        f'CREATE INDEX "{CREATED_BY_INDEX}" ON "executions_execution" ("created_by_id")',
    ]
    if vendor == "postgresql":
        drop.append(f'DROP INDEX IF EXISTS "{FLOW_NAME_INDEX}_like"')
        create.append(
            f'CREATE INDEX "{FLOW_NAME_INDEX}_like" ON "executions_execution" ("flow_name" varchar_pattern_ops)'
        )
    return drop, create


def drop_indexes(apps, schema_editor):
    for sql in _statements(schema_editor.connection.vendor)[0]:
        schema_editor.execute(sql)


def create_indexes(apps, schema_editor):
    for sql in _statements(schema_editor.connection.vendor)[1]:
        schema_editor.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("executions", "0003_execution_secret_inputs"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="execution",
                    name="created_by",
                    field=models.ForeignKey(blank=True, db_index=False, null=True,
                                            on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                                            to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name="execution",
                    name="flow_name",
                    field=models.SlugField(db_index=False, max_length=100),
                ),
            ],
        ),
    ]
