"""The gateway: the public API (``teu_api.gateway.v1``), composing the runtime, storage and logs."""
