"""Security material and checks: the PKI, key files, signatures, TLS credentials, authorization.
May import neon.observe and the kernel's errors and validators.
"""
