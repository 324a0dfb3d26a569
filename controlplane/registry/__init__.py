"""OCI registries seen from the control plane: pulling what a manifest names by oci:// reference."""
