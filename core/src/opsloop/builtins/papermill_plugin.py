"""Built-in plugin: runbook notebooks executed with papermill (imported only when run)."""
