"""Component projects: what `neon new` writes (templates) and how `neon build` builds them."""
