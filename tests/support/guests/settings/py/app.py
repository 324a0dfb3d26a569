"""The settings guest (Python): answers with what wasi:config/store gives it."""

import wit_world
from wit_world.imports import store


class WitWorld(wit_world.WitWorld):
    def get(self, key: str) -> str | None:
        return store.get(key)

    def get_all(self) -> list[tuple[str, str]]:
        return store.get_all()
