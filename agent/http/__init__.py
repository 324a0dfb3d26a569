"""The front door: HTTP served at the node for wasi:http components (routes, the server, the wasi:http host
the agent implements, outbound HTTP to allowed hosts). May import agent.runtime, agent.observe and neon.
"""
