/**
 * Mutual TLS: the client certificate a TLS listener verified against
 * `--tls-client-ca`, turned into claims the policy's identity rules read as
 * they read a JWT's (docs/POLICY.md, "Identity"). The listener asks for a
 * certificate but does not reject the handshake without one, so a caller
 * without a certificate, or with one from another CA, gets a JSON 401 and an
 * audit event rather than a bare TLS alert; only `socket.authorized` — the
 * chain verified by OpenSSL against the configured CA — makes a certificate
 * count. The claims: `iss` is `x509`; `sub` and `cn` the subject CN; `o`,
 * `ou` the subject's organisation and unit; `san` the first
 * subjectAltName value; `dns`, `email`, `uri` every SAN of that kind.
 */
import type { TLSSocket } from "node:tls";
import type { Context } from "hono";
import type { Claims } from "../policy/identity.js";

export const CERT_ISSUER = "x509";

export type CertResult =
  | { present: false }
  | { present: true; ok: false; reason: string }
  | { present: true; ok: true; claims: Claims };

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The TLS socket under a request served by @hono/node-server, if any (none under app.request()). */
function tlsSocket(c: Context): TLSSocket | null {
  const env = c.env as { incoming?: { socket?: unknown } } | undefined;
  const socket = env?.incoming?.socket as Partial<TLSSocket> | undefined;
  return socket && typeof socket.getPeerCertificate === "function" ? (socket as TLSSocket) : null;
}

export function clientCertificate(c: Context): CertResult {
  const socket = tlsSocket(c);
  if (!socket) return { present: false };
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { present: false };
  if (!socket.authorized) {
    return {
      present: true,
      ok: false,
      reason: `client certificate refused: ${String(socket.authorizationError)}`,
    };
  }
  const sans = (cert.subjectaltname ?? "")
    .split(/,\s*/)
    .filter((s) => s.includes(":"))
    .map((s) => [s.slice(0, s.indexOf(":")), s.slice(s.indexOf(":") + 1)] as const);
  const of = (kind: string) => sans.filter(([k]) => k === kind).map(([, v]) => v);
  const cn = first(cert.subject?.CN);
  const claims: Record<string, unknown> = {
    iss: CERT_ISSUER,
    dns: of("DNS"),
    email: of("email"),
    uri: of("URI"),
  };
  if (cn !== undefined) {
    claims.sub = cn;
    claims.cn = cn;
  }
  const o = first(cert.subject?.O);
  const ou = first(cert.subject?.OU);
  if (o !== undefined) claims.o = o;
  if (ou !== undefined) claims.ou = ou;
  if (sans[0]) claims.san = sans[0][1];
  return { present: true, ok: true, claims };
}
