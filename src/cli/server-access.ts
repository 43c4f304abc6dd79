/**
 * How callers of `custos server` get in, read and checked before the node
 * opens so that a wrong flag stops the start with exit 2 and a message that
 * names it: the policy document (validated and linted; refused on any
 * error), the JWT keys (which need a policy to map claims to principals),
 * and the TLS files (mutual TLS likewise needs a policy). Kept apart from
 * the server command, which wires these into the node.
 */
import { readFileSync } from "node:fs";
import { JwtVerifier } from "../api/jwt.js";
import type { TlsFiles } from "../api/server.js";
import { PolicyEngine, PolicyLoadError } from "../policy/engine.js";
import { CliError, EXIT } from "./client.js";

/** The policy the node runs, or null for the role table; a document with errors stops the start (exit 2). */
export function loadPolicy(file: string | undefined): PolicyEngine | null {
  if (file === undefined || file === "") return null;
  try {
    return PolicyEngine.fromFile(file);
  } catch (err) {
    if (err instanceof PolicyLoadError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

export function jwtVerifier(
  opts: { jwksFile?: string; jwksUrl?: string; jwtIssuer?: string; jwtAudience?: string },
  policy: PolicyEngine | null,
): JwtVerifier | null {
  if (opts.jwksFile === undefined && opts.jwksUrl === undefined) {
    if (opts.jwtIssuer || opts.jwtAudience)
      throw new CliError("--jwt-issuer/--jwt-audience need --jwks-file or --jwks-url", EXIT.usage);
    return null;
  }
  if (!policy)
    throw new CliError("JWTs are mapped to principals by the policy: give --policy too", EXIT.usage);
  try {
    return JwtVerifier.fromOptions({
      jwksFile: opts.jwksFile,
      jwksUrl: opts.jwksUrl,
      issuer: opts.jwtIssuer ?? "",
      audience: opts.jwtAudience ?? "",
    });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
}

export function tlsFiles(
  opts: { tlsCert?: string; tlsKey?: string; tlsClientCa?: string },
  policy: PolicyEngine | null,
): TlsFiles | undefined {
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) {
    if (opts.tlsClientCa) throw new CliError("--tls-client-ca needs --tls-cert and --tls-key", EXIT.usage);
    return undefined;
  }
  if (!opts.tlsCert || !opts.tlsKey) throw new CliError("give --tls-cert and --tls-key together", EXIT.usage);
  if (opts.tlsClientCa && !policy) {
    throw new CliError(
      "client certificates are mapped to principals by the policy: give --policy too",
      EXIT.usage,
    );
  }
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new CliError(`${flag} ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  };
  return {
    cert: read("--tls-cert", opts.tlsCert),
    key: read("--tls-key", opts.tlsKey),
    ...(opts.tlsClientCa && { clientCa: read("--tls-client-ca", opts.tlsClientCa) }),
  };
}
