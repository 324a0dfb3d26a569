"""gRPC and HTTP plumbing: server factories and the call guard, the inline core server, the small HTTPS
server, serving until a signal. May import neon.security, neon.observe and the kernel's modules.
"""
