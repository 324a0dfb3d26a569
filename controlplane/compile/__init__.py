"""Native code for agents, made once per cluster and engine key (controlplane.compile.code_maker)."""
