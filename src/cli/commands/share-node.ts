/**
 * `custos share-node --listen HOST:PORT --data-dir DIR`: a share node, run by
 * a hospital or cloud that holds a share of threshold keys (and, through other
 * route modules mounted on the same app, shares of repositories). It keeps its
 * keys and shares in DIR, answers only requests signed by the custos nodes it
 * is told to trust (`--allow-node`, repeatable: the node identity keys custos
 * servers print at start), and audits what it gives to DIR/threshold-audit.jsonl.
 * With `--tls-cert/--tls-key` it serves HTTPS, and with `--tls-client-ca`
 * mutual TLS: a client without a certificate from that CA does not complete
 * the handshake (custos nodes refuse plain http:// share nodes off loopback).
 * Repository shares are served only to the custos nodes named with
 * `--repository-client NODE_KEY=TOKEN_FILE`, each token scoped to its node
 * (docs/FORMATS.md §5.8); the unscoped `--repository-token-file` of protocol
 * v1 is refused with the reason.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { Command } from "commander";
import { Hono } from "hono";
import { b64u } from "../../crypto/bytes.js";
import { ShareNodeKeys } from "../../share-node/node-keys.js";
import { PartialAudit } from "../../share-node/partial-audit.js";
import {
  legacyShareFiles,
  type RepositoryClient,
  repositoryRoutes,
} from "../../share-node/repository-routes.js";
import { ShareFiles } from "../../share-node/share-files.js";
import { thresholdRoutes } from "../../share-node/threshold-routes.js";
import { RequestVerifier } from "../../threshold/request-auth.js";
import { CliError, EXIT } from "../client.js";
import { collect } from "../io.js";
import { parseListen } from "./server.js";

function allowedKeys(values: string[] | undefined): Uint8Array[] {
  return (values ?? []).map((v) => {
    try {
      const key = b64u.decode(v, "--allow-node");
      if (key.length === 32) return key;
    } catch {
      // fall through to the usage error
    }
    throw new CliError(
      `--allow-node '${v}' must be a custos node's Ed25519 identity key (32 bytes, base64url)`,
      EXIT.usage,
    );
  });
}

/** `--tls-cert/--tls-key[/--tls-client-ca]` as @hono/node-server options for an HTTPS listener, or nothing. */
function tlsListener(opts: { tlsCert?: string; tlsKey?: string; tlsClientCa?: string }) {
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) {
    if (opts.tlsClientCa) throw new CliError("--tls-client-ca needs --tls-cert and --tls-key", EXIT.usage);
    return undefined;
  }
  if (!opts.tlsCert || !opts.tlsKey) throw new CliError("give --tls-cert and --tls-key together", EXIT.usage);
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new CliError(`${flag} ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  };
  const ca = opts.tlsClientCa === undefined ? undefined : read("--tls-client-ca", opts.tlsClientCa);
  return {
    createServer: createHttpsServer,
    serverOptions: {
      cert: read("--tls-cert", opts.tlsCert),
      key: read("--tls-key", opts.tlsKey),
      minVersion: "TLSv1.2" as const,
      // Unlike the custos API, a share node has no JSON 401 to give a client without a certificate.
      ...(ca && { ca, requestCert: true, rejectUnauthorized: true }),
    },
  };
}

/** `--repository-client NODE_KEY=TOKEN_FILE`, repeatable: each token scoped to one custos node. */
function repositoryClients(values: string[] | undefined): RepositoryClient[] {
  return (values ?? []).map((v) => {
    const m = /^([A-Za-z0-9_-]{43})=(.+)$/.exec(v);
    let node: Uint8Array | null = null;
    try {
      node = m ? b64u.decode(m[1] as string, "node key") : null;
    } catch {
      node = null;
    }
    if (!m || node?.length !== 32)
      throw new CliError(
        `--repository-client '${v}' must be NODE_KEY=TOKEN_FILE: the custos node's Ed25519 identity key (base64url, as it logs at start) and the file holding the token issued to that node`,
        EXIT.usage,
      );
    let token: string;
    try {
      token = readFileSync(m[2] as string, "utf8").trim();
    } catch (err) {
      throw new CliError(
        `--repository-client: cannot read token file '${m[2]}': ${(err as NodeJS.ErrnoException).code ?? err}`,
        EXIT.usage,
      );
    }
    if (token.length < 16)
      throw new CliError(
        `--repository-client: the token in '${m[2]}' must be at least 16 characters`,
        EXIT.usage,
      );
    return { node, token };
  });
}

/**
 * Node's defaults let a stranger hold any number of connections for up to
 * 300 s each; a share node reads at most 256 KiB per request, so capping
 * connections and the time to send one bounds what slow senders can pin
 * (docs/FORMATS.md §11.4).
 */
export const SHARE_NODE_LIMITS = { maxConnections: 512, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 };
function limitConnections(server: ReturnType<typeof serve>): void {
  server.maxConnections = SHARE_NODE_LIMITS.maxConnections;
  if ("requestTimeout" in server) {
    server.headersTimeout = SHARE_NODE_LIMITS.headersTimeoutMs;
    server.requestTimeout = SHARE_NODE_LIMITS.requestTimeoutMs;
  }
}

export function shareNodeCommand(program: Command): void {
  program
    .command("share-node")
    .description("run a share node holding shares of threshold keys")
    .requiredOption("--data-dir <dir>", "where the node keeps its keys, shares and audit file")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8300")
    .option("--allow-node <key>", "a custos node identity key allowed to ask (repeatable)", collect)
    .option(
      "--repository-client <key=file>",
      "serve custody-tree repository shares to the custos node with identity KEY, bearing the token in FILE; each node sees only its own shares (repeatable)",
      collect,
    )
    .option("--tls-cert <file>", "serve HTTPS: the share node's certificate chain (PEM)")
    .option("--tls-key <file>", "the share node's private key (PEM)")
    .option(
      "--tls-client-ca <file>",
      "mutual TLS: require client certificates issued by this CA (PEM) from custos nodes",
    )
    .option(
      "--repository-token-file <file>",
      "refused: replaced by --repository-client (tokens are now scoped to a node)",
    )
    .option("--insecure-test-wrong-partials", "TEST ONLY: answer partial requests with wrong partials")
    .action(
      async (opts: {
        dataDir: string;
        listen: string;
        allowNode?: string[];
        repositoryClient?: string[];
        repositoryTokenFile?: string;
        tlsCert?: string;
        tlsKey?: string;
        tlsClientCa?: string;
        insecureTestWrongPartials?: boolean;
      }) => {
        const { host, port } = parseListen(opts.listen);
        const tls = tlsListener(opts);
        const allowed = allowedKeys(opts.allowNode);
        if (opts.repositoryTokenFile !== undefined)
          throw new CliError(
            "--repository-token-file is refused: its tokens reached every node's shares (custos-repository/v1). " +
              "Give --repository-client NODE_KEY=TOKEN_FILE for each custos node, with a token of its own (docs/FORMATS.md §5.8)",
            EXIT.usage,
          );
        const clients = repositoryClients(opts.repositoryClient);
        process.umask(0o077);
        mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
        const keys = ShareNodeKeys.loadOrCreate(opts.dataDir);
        const app = new Hono();
        const audit = new PartialAudit(opts.dataDir);
        thresholdRoutes(app, {
          keys,
          files: new ShareFiles(opts.dataDir),
          audit,
          verifier: new RequestVerifier(keys.publicKey, allowed),
          wrongPartials: opts.insecureTestWrongPartials === true,
        });
        const repositoryDir = join(opts.dataDir, "repository");
        if (clients.length > 0) {
          try {
            repositoryRoutes(app, { dir: repositoryDir, clients });
          } catch (err) {
            throw new CliError(`--repository-client: ${(err as Error).message}`, EXIT.usage);
          }
        }
        const legacy = legacyShareFiles(repositoryDir);
        if (legacy.length > 0)
          process.stderr.write(
            `custos share-node: ${legacy.length} share(s) in ${repositoryDir} were stored by protocol v1 (not scoped to a node) and are not served; move each into ${repositoryDir}/<hex of the node key named in its "node" field>/ (docs/FORMATS.md §5.8)\n`,
          );
        app.notFound((c) =>
          c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path}` }, 404),
        );
        const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
          const s = serve({ fetch: app.fetch, hostname: host, port, ...tls }, () => resolve(s));
          s.once("error", reject);
        });
        limitConnections(server);
        const address = server.address() as AddressInfo;
        if (allowed.length === 0)
          process.stderr.write(
            "custos share-node: no --allow-node given; every signed request will be refused\n",
          );
        if (opts.insecureTestWrongPartials)
          process.stderr.write("custos share-node: TEST FAULT INJECTION ON: partials are wrong\n");
        process.stdout.write(
          `share node identity ${b64u.encode(keys.publicKey)} hpke ${b64u.encode(keys.hpkePublicKey)}\nlistening on ${tls ? "https" : "http"}://${address.address}:${address.port}\n`,
        );
        // The refusals counted since the last summary are written before the process ends.
        const stop = () => {
          audit.close().finally(() => server.close(() => process.exit(0)));
        };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    );
}
