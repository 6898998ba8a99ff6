"""flowexec's distro and configurator for `opentelemetry-instrument` (the standard launcher).

Registered in setup.cfg (``opentelemetry_distro`` / ``opentelemetry_configurator`` ``flowexec``). The launcher
runs them at interpreter start, before it instruments any library:

* the distro sets the defaults the auto-instrumentations read from the environment: DJANGO_SETTINGS_MODULE
  (the Django instrumentor reads settings; without it every worker fails), the excluded URLs, stable HTTP
  semantic conventions, and leaves the database to flowexec (FLOWEXEC_TRACE_DATABASE decides, with parented
  query spans only);
* the configurator installs no provider: each flowexec process builds its own, after fork, with its own
  service.name and the same code as without the launcher (tracing.provider.configure_tracing), so both ways
  of starting give the same trace. The instrumentations the launcher applied keep working, through the API's
  proxy tracer provider, and flowexec does not instrument them a second time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_CONFIGURATOR,
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.sdk._configuration import _BaseConfigurator

from tracing.config import DEFAULT_SEMCONV_OPT_IN, OTEL_SEMCONV_STABILITY_OPT_IN
from tracing.instrumentation import EXCLUDED_URLS

NAME = "flowexec"
OTEL_PYTHON_DJANGO_EXCLUDED_URLS = "OTEL_PYTHON_DJANGO_EXCLUDED_URLS"
# flowexec instruments these itself when FLOWEXEC_TRACE_DATABASE is on (tracing.instrumentation).
DATABASE_INSTRUMENTATIONS = ("sqlite3", "psycopg")


def launcher_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to set before the launcher instruments anything (a non-empty value the user set is kept)."""
    disabled = [name.strip() for name in environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")]
    defaults = {
        "DJANGO_SETTINGS_MODULE": "flowexec.settings",
        OTEL_PYTHON_CONFIGURATOR: NAME,
        OTEL_PYTHON_DJANGO_EXCLUDED_URLS: EXCLUDED_URLS,
        OTEL_SEMCONV_STABILITY_OPT_IN: DEFAULT_SEMCONV_OPT_IN,
    }
    wanted = {name: value for name, value in defaults.items() if not environ.get(name)}
    wanted[OTEL_PYTHON_DISABLED_INSTRUMENTATIONS] = ",".join(
        dict.fromkeys(name for name in [*disabled, *DATABASE_INSTRUMENTATIONS] if name)
    )
    return wanted


class _OtherConfiguratorNotice(logging.Filter):
    """Drop the launcher's notice that another configurator was not loaded because flowexec's was chosen."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for "Configuration of X not loaded ..." records naming flowexec."""
        return not (record.getMessage().startswith("Configuration of ") and NAME in map(str, record.args or ()))


class FlowexecDistro(BaseDistro):
    """Set flowexec's defaults for the auto-instrumentations, before they run."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.update(launcher_environment(os.environ))
        # With opentelemetry-distro installed there are two configurators, and the launcher warns about the
        # one it skips; choosing flowexec's is this distro's purpose, so that notice is not a warning here.
        logging.getLogger("opentelemetry.instrumentation.auto_instrumentation._load").addFilter(
            _OtherConfiguratorNotice()
        )


class FlowexecConfigurator(_BaseConfigurator):
    """Install nothing: every flowexec process configures its own provider at start (after fork)."""

    def _configure(self, **kwargs: Any) -> None:
        """The provider, exporters and propagators come from tracing.provider.configure_tracing."""
