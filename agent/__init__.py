"""The Neon Grid agent: runs components in wasmtime, forwards split links over
gRPC, and reports to the control plane."""
