"""Native code: how wasmtime is configured to make it, what names it, and the compiler tiers."""
