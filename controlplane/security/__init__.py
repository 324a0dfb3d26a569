"""Who is let in and what is trusted: agent admission (join tokens, certificates), the control plane's own
keys, trust policy for artifacts. May import controlplane.state and neon.
"""
