"""The product's URLs plus POST /bench/ref/, the plain DRF one-insert endpoint executions are compared with."""

from django.urls import path

from bench.refapp.views import NoteCreate
from flowexec.urls import handler400, handler404, handler500
from flowexec.urls import urlpatterns as product_urlpatterns

__all__ = ["handler400", "handler404", "handler500", "urlpatterns"]

urlpatterns = [path("bench/ref/", NoteCreate.as_view(), name="bench-ref"), *product_urlpatterns]
