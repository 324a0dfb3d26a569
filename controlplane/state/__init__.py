"""What the control plane keeps: the etcd store and its parts, the model it reads and writes (world),
assignments, leader election, blob store and replication. May import controlplane.placement and neon.
"""
