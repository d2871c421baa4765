from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built concurrently: the containers table only grows, and the worker writes to it all the time.
    atomic = False

    dependencies = [
        ("fleet", "0004_observed_health_and_hosts"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="container",
            index=models.Index(
                condition=models.Q(("healthy_at__isnull", True)),
                fields=["host", "created_at"],
                name="container_never_healthy",
            ),
        ),
    ]
