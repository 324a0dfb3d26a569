"""Neon Grid's shared kernel: errors, model, manifest, grants, policy, the model to and from protobuf, and the
protos; rpc, security, observe and oci (OCI references and the registry client) below. Imports nothing above it.
"""

__version__ = "0.1.0"
