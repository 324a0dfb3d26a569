"""WIT values across nodes: codecs per type, signatures, protobuf framing, wasmtime's C layout, compiled
encoders and decoders. Imports only neon (the lowest layer of the agent).
"""
