"""``teu-engine``, the supervisor that starts the four services and restarts any that dies."""
