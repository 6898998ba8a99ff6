"""Settings for the pytest process: the project's settings with DEBUG on and no network exporter.

Set here rather than in conftest.py because pytest-django loads settings before any conftest.
The pytest process's spans go to the in-memory exporter that conftest.py adds.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ["OTEL_TRACES_EXPORTER"] = "none"

from flowexec.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the default shared-cache in-memory database: that one takes table locks that
    # the busy timeout does not cover, so concurrent executions would fail with "table is locked".
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"flowexec-test-{os.getpid()}.sqlite3")
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # One test database per pytest process, so two runs on one server never share test_<name>.
    DATABASES["default"]["TEST"] = {"NAME": f"test_flowexec_{os.getpid()}"}  # noqa: F405
