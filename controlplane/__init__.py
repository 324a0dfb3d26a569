"""The Neon Grid control plane: stores applications in etcd, places their components on agents, and
pushes each agent its slice of the graph. Layers, lowest first: placement, state, security, wit, reconcile,
registry (oci:// pulls at apply) and compile (native code for agents), api, process.
"""
