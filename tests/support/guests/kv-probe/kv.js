// The kv-basic guest (JavaScript): get, set and increment on the bucket it names, through wasi:keyvalue.
import { open } from "wasi:keyvalue/store@0.2.0-draft2";
import { increment as add } from "wasi:keyvalue/atomics@0.2.0-draft2";

function why(err) {
  const payload = err && err.payload;
  if (payload && payload.tag) {
    return payload.tag === "other" ? `other: ${payload.val}` : payload.tag;
  }
  return String(err);
}

export function get(bucket, key) {
  try {
    const value = open(bucket).get(key);
    return value === undefined ? undefined : new TextDecoder().decode(value);
  } catch (err) {
    throw why(err);
  }
}

export function set(bucket, key, value) {
  try {
    open(bucket).set(key, new TextEncoder().encode(value));
  } catch (err) {
    throw why(err);
  }
}

export function increment(bucket, key, delta) {
  try {
    return add(open(bucket), key, delta);
  } catch (err) {
    throw why(err);
  }
}
