"""A plain DRF app with one insert per POST: the service benchmark's reference point."""
