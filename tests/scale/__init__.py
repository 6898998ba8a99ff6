"""Scale-out: Celery workers over a real broker, PostgreSQL, concurrent runners."""
