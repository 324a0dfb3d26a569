"""What the agent gives components as a platform, through standard WASI interfaces: configuration
(``wasi:config/store``) and the secrets behind it."""
