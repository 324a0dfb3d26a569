"""Neon Grid's shared kernel: errors, model, manifest, grants, policy, the model to and from protobuf, and the
protos; rpc, security, observe, oci (OCI references and the registry client) and native (engine keys, compiler
tiers, the compile process) below. Imports nothing above it.
"""

__version__ = "0.1.0"
