"""Everything done with wasm-tools: interfaces read from binaries, link checks, composition into fused
components, re-exports. May import controlplane.state and neon.
"""
