"""The control plane's surfaces: the Control, AgentControl and Join servicers, the web (metrics, dashboard),
the relay to agents, typed against the Plane protocol. May import every controlplane package below it and neon.
"""
