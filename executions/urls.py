"""API routes for flows and executions."""

from rest_framework.routers import DefaultRouter

from executions.views import ExecutionViewSet, FlowViewSet

# Path converters, not regexes: server span names read "POST api/executions/", not "...$".
# No format-suffix twins (/api/flows.json): JSON is the one format, chosen by Accept.
router = DefaultRouter(use_regex_path=False)
router.include_format_suffixes = False
router.register("flows", FlowViewSet, basename="flow")
router.register("executions", ExecutionViewSet, basename="execution")

urlpatterns = router.urls
