"""What every Teu service shares: bootstrap and servers, the error and authorization interceptors,
logging, metrics, configuration, user-namespace mappings."""
