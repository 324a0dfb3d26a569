"""Calls between nodes: the DataPlane server, what it serves (Serving), the forwarders and lanes of split
links, hand-framed requests. May import agent.runtime, agent.observe, agent.values and neon.
"""
