// {{name}}: an HTTP service for Skiff, built into a WebAssembly component by componentize-js.
//
// Skiff runs one fresh instance of the component per request, which arrives as a `fetch` event
// (the Service Worker API: Request, Response, URL, fetch, …). Whatever console.log prints goes to
// the pod's log (`kubectl logs`).

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const path = new URL(request.url).pathname;
  console.log(`${request.method} ${path}`);
  if (path === '/healthz') {
    return text('ok');
  }
  return text('Hello from {{name}} (javascript)!\n');
}

function text(body, status = 200) {
  return new Response(body, { status, headers: { 'content-type': 'text/plain' } });
}
