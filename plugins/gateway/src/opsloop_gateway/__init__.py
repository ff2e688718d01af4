"""opsloop-gateway: an OpenAI-compatible guarded gateway (``opsloop guard serve``)."""
