"""The product's settings plus the bench-only reference app and its URL (never in the product's URLs)."""

from flowexec.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.refapp"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
