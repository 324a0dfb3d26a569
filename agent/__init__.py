"""The Neon Grid agent: runs components in wasmtime, forwards split links over gRPC, reports to the control plane.
Layers, lowest first: values, runtime, observe and platform, dataplane, control, then linking and the shell;
imports neon only.
"""
