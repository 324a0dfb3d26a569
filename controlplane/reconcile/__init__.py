"""Deciding what runs where: the pure plan, fusion groups, status, events, and beside them the loop and
the report intake that do the I/O. May import controlplane.wit, .state, .placement and neon.
"""
