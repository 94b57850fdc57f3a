"""The runtime service: containers and their processes, through conmon and an OCI runtime."""
