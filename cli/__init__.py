"""The top layer: the ``neon`` command (main, its parser and one module per command group), the
control-plane client, rendering and the dashboard proxy. May import every other package; none imports it."""
