from . import NatTraversalPlugin  # noqa: F401 (registers the plugin's classes)
