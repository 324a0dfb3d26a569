"""What comes from the control plane: the node's identity, the session, the saved desired state, the
artifact cache and provenance checks. May import agent.config and neon.
"""
