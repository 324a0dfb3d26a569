// hello-http in JavaScript (componentize-js): the same answers as the Python example.
//   GET  /hello/NAME  -> "hello, NAME (you asked for PATH)"
//   POST /hello/...   -> the body back, with its length in x-body-length
addEventListener("fetch", (event) =>
  event.respondWith(
    (async () => {
      const request = event.request;
      const url = new URL(request.url);
      const path = url.pathname + url.search;
      if (request.method === "POST") {
        const body = new Uint8Array(await request.arrayBuffer());
        return new Response(body, {
          status: 200,
          headers: { "content-type": "text/plain; charset=utf-8", "x-body-length": String(body.length) },
        });
      }
      const name = url.pathname.split("/").pop() || "world";
      return new Response(`hello, ${name} (you asked for ${path})\n`, {
        status: 200,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    })(),
  ),
);
