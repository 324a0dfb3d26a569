"""Components in OCI registries: references, and a client that pushes, resolves, pulls and signs."""
