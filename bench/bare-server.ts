/**
 * The baseline for bench/envelope.ts: a bare hono application on
 * @hono/node-server, served the way custos serves its API (`serve()` on a
 * loopback address, port 0, its own process, sources run through tsx). One
 * POST route parses a JSON body shaped like a datakey request and answers a
 * small JSON object — no validation, no auth, no crypto, no store, no audit —
 * so the ratio custos/bare is what custos's work costs on top of hono + Node
 * HTTP on the same machine in the same run.
 *
 *   node --import tsx bench/bare-server.ts [HOST:PORT]   (default 127.0.0.1:0)
 *
 * Prints `bare listening on http://HOST:PORT` once the socket is open; stops
 * on SIGTERM or SIGINT.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";

interface UseBody {
  purpose?: unknown;
  context?: unknown;
}

const [, , listenArg = "127.0.0.1:0"] = process.argv;
const m = /^([^:]+):(\d{1,5})$/.exec(listenArg);
if (!m?.[1] || !m[2]) {
  process.stderr.write(`bare-server: listen address '${listenArg}' must be HOST:PORT\n`);
  process.exit(2);
}
const hostname = m[1];
const port = Number(m[2]);

const app = new Hono();
app.post("/bare", async (c) => {
  const body = await c.req.json<UseBody>();
  return c.json({ ok: true, purpose: typeof body.purpose === "string" ? body.purpose : null }, 200);
});

const server = serve({ fetch: app.fetch, hostname, port }, (info: AddressInfo) => {
  process.stdout.write(`bare listening on http://${info.address}:${info.port}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
