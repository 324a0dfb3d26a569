// The kitchen-sink exporter in JavaScript (componentize-js): every function echoes its input.

function echoResult(r) {
  // jco passes a result parameter as { tag, val }; returning a value means ok, throwing means err.
  if (r.tag === "err") {
    throw r.val;
  }
  return r.val;
}

export const sink = {
  echoBool: (v) => v,
  echoInts: (a, b, c, d, e, f, g, h) => [a, b, c, d, e, f, g, h],
  echoFloats: (a, b) => [a, b],
  echoChar: (c) => c,
  echoString: (s) => s,
  echoBytes: (b) => b,
  echoLists: (l) => l,
  echoRecord: (p) => p,
  echoVariant: (s) => s,
  echoEnum: (c) => c,
  echoFlags: (p) => p,
  echoOption: (o) => o,
  echoNestedOption: (o) => o,
  echoResult,
  echoBareResult: echoResult,
  echoAll: (points, shape, colors) => [points, shape, colors],
  noResult: (v) => {},
};
