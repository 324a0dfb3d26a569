"""Running components in wasmtime: the engine and templates, instance pools, capability denials, raw
calls below wasmtime-py's bindings, function types read once. May import agent.values and neon.
"""
