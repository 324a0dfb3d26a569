// The settings guest (JavaScript): answers with what wasi:config/store gives it.
import * as store from "wasi:config/store@0.2.0-draft-2024-09-27";

export function get(key) {
  return store.get(key);
}

export function getAll() {
  return store.getAll();
}
