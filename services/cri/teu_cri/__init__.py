"""Teu's Kubernetes CRI service: ``runtime.v1`` RuntimeService and ImageService on ``cri.sock``."""
