"""A whole cluster on one machine, for ``neon dev``, the tests and the benchmarks: etcd, control planes
and agents as child processes, and the example guests built with their real toolchains. Imports below it only."""
