// js-hello: a small JSON service for Skiff, built into a WebAssembly component with
// componentize-js. Skiff runs a fresh instance per request, which arrives as a `fetch` event.
//
// Routes: `GET /` (who answers, with the greeting), `GET /hello/<name>` (a greeting for
// `name`), `GET /healthz` (the readiness probe); other paths get a JSON 404, other methods 405.
// The greeting comes from the `GREETING` environment variable, which deploy.yaml sets from a
// ConfigMap; the environment is read through the WASI interface the world imports.

import { getEnvironment } from 'wasi:cli/environment@0.2.10';

const SERVICE = 'js-hello';

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const path = new URL(request.url).pathname;
  if (path === '/healthz') {
    return new Response('ok', { headers: { 'content-type': 'text/plain' } });
  }
  const [status, value] = route(request.method, path, Object.fromEntries(getEnvironment()));
  console.log(JSON.stringify({ path, status }));
  return new Response(JSON.stringify(value) + '\n', {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

function route(method, path, env) {
  const greeting = env.GREETING ?? 'Hello';
  if (method !== 'GET') {
    return [405, { error: 'only GET is served' }];
  }
  if (path === '/') {
    return [200, {
      service: SERVICE,
      language: 'javascript',
      greeting,
      namespace: env.POD_NAMESPACE ?? '',
    }];
  }
  if (path.startsWith('/hello/') && path.length > '/hello/'.length) {
    const name = decodeURIComponent(path.slice('/hello/'.length));
    return [200, { message: `${greeting}, ${name}!`, service: SERVICE }];
  }
  return [404, { error: `no route for ${path}` }];
}
