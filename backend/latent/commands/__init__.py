"""One module per latent command, each exposing ``add_parser`` for ``backend.cli``."""
