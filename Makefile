# Shortcuts for the two README commands.
.PHONY: demo test stop lint
demo:
	scripts/demo.sh
test:
	scripts/test.sh
stop:
	scripts/demo.sh stop
lint:
	.venv/bin/ruff check .
