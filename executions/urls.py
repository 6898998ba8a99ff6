"""API routes for flows and executions."""

from rest_framework.routers import DefaultRouter

from executions.views import ExecutionViewSet, FlowViewSet

router = DefaultRouter()
router.register("flows", FlowViewSet, basename="flow")
router.register("executions", ExecutionViewSet, basename="execution")

urlpatterns = router.urls
