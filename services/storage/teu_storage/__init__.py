"""The storage service: layers, images, copy-on-write snapshots, registries and archives."""
