/**
 * Wires a running node: store, auditor, seal, key ring, authoriser, HTTP
 * server, and the housekeeping timer (scheduled destruction, automatic
 * rotation). Kept apart from `createApp` so tests can build the app without a
 * socket and the CLI can start a real server with the same parts. Shutdown
 * drops every secret, drains the store and closes the socket. The listener
 * has explicit limits (`HttpLimits`) instead of Node's defaults — no cap on
 * connections, 300 s for a request whose body never finishes arriving.
 */
import { chmodSync, mkdirSync } from "node:fs";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { Logger } from "pino";
import { type AuditContextConfig, auditContextConfig } from "../audit/audit-context.js";
import { Auditor } from "../audit/auditor.js";
import { DenialTally } from "../audit/denial-tally.js";
import { MerkleLog } from "../audit/merkle-log.js";
import { WitnessCollector, type WitnessConfig } from "../audit/witness-collector.js";
import { b64u } from "../crypto/bytes.js";
import { CustodyChanger } from "../custody/custody-change.js";
import { NodeIdentity } from "../custody/node-identity.js";
import { SealManager } from "../custody/seal.js";
import { TpmCustody } from "../custody/tpm-custody.js";
import { nodeSharesFor, unsealUnattended } from "../custody/unattended.js";
import { EnvelopeService } from "../keys/envelope-ops.js";
import { KeyRing } from "../keys/keyring.js";
import { RoleAuthorizer } from "../policy/authorizer.js";
import type { PolicyEngine } from "../policy/engine.js";
import { ProtectionLevels } from "../protect/levels.js";
import { TpmKeys } from "../protect/tpm.js";
import type { RepositoryConfig } from "../repository/config.js";
import { openSqliteStore } from "../store/sqlite.js";
import type { Store } from "../store/store.js";
import { ThresholdCoordinator } from "../threshold/coordinator.js";
import type { ShareNodeLink } from "../threshold/share-node-link.js";
import { TpmClient } from "../tpm/client.js";
import { transportFromAddress } from "../tpm/transport.js";
import { AnonymousGuard, type AnonymousLimits } from "./anonymous.js";
import { type App, createApp } from "./app.js";
import { parseAllowedOrigin } from "./browser-guard.js";
import type { JwtVerifier } from "./jwt.js";

export const DEFAULT_DESTRUCTION_WAIT_SECONDS = 7 * 86400;
const SWEEP_INTERVAL_MS = 60_000;

export interface NodeOptions {
  dataDir: string;
  destructionWaitSeconds?: number;
  log: Logger;
  /** How long a write waits for a lock held by another process before it is refused (default 5 s). */
  storeBusyTimeoutMs?: number;
  /** Witnesses to collect countersignatures from (docs/FORMATS.md §8.3). */
  witnesses?: WitnessConfig;
  /** Identifying and clear context keys for audit events (each list defaults separately; docs/FORMATS.md §8). */
  auditContext?: Partial<AuditContextConfig>;
  /** This node's TPM: `swtpm:HOST:PORT` or `device:/dev/tpmrm0`. Without one, keys are held in process memory. */
  tpm?: string;
  /** The policy engine deciding every request; without it the first-cut role table does. */
  policy?: PolicyEngine | null;
  /** Bearer JWT verification; its claims are mapped by the policy. */
  jwt?: JwtVerifier | null;
  /** Whether the listener will verify client certificates (see `listen`'s `tls.clientCa`). */
  clientCerts?: boolean;
  /** Browser origins allowed to call the API (CSRF, src/api/browser-guard.ts); none by default. */
  allowedOrigins?: readonly string[];
  /** Share nodes for threshold keys, name → URL (docs/FORMATS.md §11); none: no threshold keys. */
  shareNodes?: ReadonlyMap<string, string>;
  /** How share nodes are reached (TLS, plain-http rule); default: https:// with system CAs, http:// on loopback. */
  shareNodeLink?: ShareNodeLink;
  /** Share repositories for the custody tree's `repository` leaves (repository/config.ts). */
  repositories?: RepositoryConfig;
  /** Rate limits for unidentified callers, and how often their counted refusals are written (api/anonymous.ts). */
  anonymous?: Partial<AnonymousLimits> & { auditIntervalMs?: number };
}

export interface CustosNode {
  app: App;
  /** The running policy, when the node was opened with one (reloaded on SIGHUP by the CLI). */
  policy: PolicyEngine | null;
  store: Store;
  merkle: MerkleLog;
  seal: SealManager;
  keys: KeyRing;
  tpm: TpmCustody | null;
  /** Rekey and root rotation. */
  custody: CustodyChanger;
  close(): Promise<void>;
}

/** Builds a node on a data directory, without listening. */
export async function openNode({
  dataDir,
  destructionWaitSeconds,
  log,
  storeBusyTimeoutMs,
  witnesses,
  auditContext,
  tpm: tpmAddress,
  policy = null,
  jwt = null,
  clientCerts = false,
  allowedOrigins = [],
  shareNodes,
  shareNodeLink,
  repositories,
  anonymous,
}: NodeOptions): Promise<CustosNode> {
  // Checked before anything is opened: a bad list must stop the node, not log PHI.
  const contextConfig = auditContextConfig(auditContext);
  for (const origin of allowedOrigins) parseAllowedOrigin(origin);
  // The store holds token hashes, sealed key material and the audit log:
  // owner-only, whether the directory is new or was made by someone else.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const store = await openSqliteStore(join(dataDir, "custos.db"), { busyTimeoutMs: storeBusyTimeoutMs });
  const auditor = new Auditor(store, log, undefined, contextConfig);
  const initialized = (await store.getSealConfig()) !== null;
  let identity: NodeIdentity;
  try {
    identity = NodeIdentity.loadOrCreate(dataDir, initialized);
  } catch (err) {
    await store.close();
    throw err;
  }
  let tpm: TpmCustody | null = null;
  if (tpmAddress) {
    const tpmKeys = new TpmKeys(new TpmClient(transportFromAddress(tpmAddress)), log);
    try {
      await tpmKeys.start();
      tpm = new TpmCustody(tpmKeys, dataDir, log);
    } catch (err) {
      await tpmKeys.close();
      identity.dispose();
      await store.close();
      throw new Error(`cannot use the TPM at ${tpmAddress}: ${(err as Error).message}`);
    }
  }
  const nodeShares = nodeSharesFor(identity, repositories, tpm?.keys.client, dataDir, log);
  const seal = await SealManager.open(store, auditor, {
    identity,
    protectRoot: tpm?.protectRoot,
    nodeShares,
  });
  const merkle = new MerkleLog(store, (err) =>
    log.error({ err }, "signing the audit tree head failed; will retry"),
  );
  seal.onUnseal((root) => merkle.start(root));
  seal.onSeal(() => merkle.stop());
  const collector =
    witnesses && witnesses.urls.length > 0
      ? new WitnessCollector(store, witnesses, () => merkle.publicKey, log)
      : null;
  collector?.start();
  const keys = new KeyRing(
    store,
    seal,
    auditor,
    destructionWaitSeconds ?? DEFAULT_DESTRUCTION_WAIT_SECONDS,
    new ProtectionLevels(tpm?.keys ?? null, thresholdCoordinator(shareNodes, identity, log, shareNodeLink)),
  );
  // A TPM reset takes the root key and every TPM key with it: seal, then let
  // the TPM seal (if enabled and the PCRs still match) unseal again.
  tpm?.keys.onReset((why) => {
    const custody = tpm as TpmCustody;
    void seal
      .sealBecause(`${why}: the keys held in the TPM are lost`)
      .then(() => custody.tryUnseal(seal))
      .catch((err: unknown) => log.error({ err }, "could not recover from the TPM reset"));
  });
  const custody = new CustodyChanger(store, auditor, seal, identity, nodeShares ?? null);
  // Before any unseal: a change the last run left unfinished is recorded as abandoned.
  await custody
    .recordAbandoned()
    .catch((err: unknown) => log.error({ err }, "could not audit the abandoned custody change"));
  const envelope = new EnvelopeService(keys, auditor);
  const denials = new DenialTally(auditor, anonymous?.auditIntervalMs, log);
  denials.start();
  const app = createApp({
    anonymous: new AnonymousGuard(denials, anonymous),
    custody,
    store,
    seal,
    keys,
    envelope,
    auditor,
    merkle,
    authorizer: policy ?? new RoleAuthorizer(),
    log,
    tpm,
    policy,
    jwt,
    clientCerts,
    allowedOrigins,
  });

  const sweep = () => {
    keys.sweep().catch((err: unknown) => log.error({ err }, "housekeeping failed; will retry"));
  };
  seal.onUnseal(() => {
    setImmediate(sweep);
  });
  const timer = setInterval(sweep, SWEEP_INTERVAL_MS);
  timer.unref();
  await tpm?.tryUnseal(seal);
  await unsealUnattended(seal, log);

  return {
    app,
    policy,
    store,
    merkle,
    seal,
    keys,
    tpm,
    custody,
    async close() {
      clearInterval(timer);
      await denials.close();
      collector?.stop();
      merkle.stop();
      seal.shutdown();
      identity.dispose();
      await tpm?.keys.close();
      await nodeShares?.close();
      await store.close();
    },
  };
}

export interface ListeningNode extends CustosNode {
  url: string;
}

/** PEM contents for an HTTPS listener; with `clientCa`, client certificates are asked for and verified. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
}

/** The listener's limits (README, "Limits"); each `custos server` flag sets one. */
export interface HttpLimits {
  /** A whole request, headers and body, must arrive within this (Node's default: 300 s). */
  requestTimeoutMs: number;
  /** The headers must arrive within this (at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections open at once; more are refused (Node's default: no limit). */
  maxConnections: number;
  /** Header lines read per request; the rest are ignored. */
  maxHeadersCount: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1024,
  maxHeadersCount: 100,
};

/** Starts the HTTP(S) server on `host:port` (port 0 picks a free one). */
export async function listen(
  node: CustosNode,
  host: string,
  port: number,
  tls?: TlsFiles,
  limits: Partial<HttpLimits> = {},
): Promise<ListeningNode> {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  const timeouts = {
    requestTimeout: l.requestTimeoutMs,
    headersTimeout: Math.min(l.headersTimeoutMs, l.requestTimeoutMs),
    keepAliveTimeout: l.keepAliveTimeoutMs,
    // How often Node looks for requests past their timeouts (default 30 s, longer than the timeout itself).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(l.requestTimeoutMs / 4))),
  };
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    // A client without a certificate (or with another CA's) still completes
    // the handshake — rejectUnauthorized is false — so that the gate answers
    // it with a JSON 401 and an audit event; only `authorized` sockets count.
    const https = tls && {
      createServer: createHttpsServer,
      serverOptions: {
        ...timeouts,
        cert: tls.cert,
        key: tls.key,
        minVersion: "TLSv1.2" as const,
        ...(tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false }),
      },
    };
    const s = serve({ fetch: node.app.fetch, hostname: host, port, serverOptions: timeouts, ...https }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  // serve() makes a node:http or node:https server (never HTTP/2): both have these.
  (server as Server).maxConnections = l.maxConnections;
  (server as Server).maxHeadersCount = l.maxHeadersCount;
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    ...node,
    url: `${tls ? "https" : "http"}://${shown}:${address.port}`,
    async close() {
      // Stop accepting, let requests in flight finish (their audit events are
      // already on their way to the store), then cut idle keep-alive sockets,
      // and any connection still open after a grace period.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // serve() makes a node:http or node:https server (never HTTP/2): both have these methods.
      const http = server as Server;
      http.closeIdleConnections();
      const grace = setTimeout(() => http.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(grace);
      await node.close();
    },
  };
}

/** The coordinator of threshold keys, signing its share-node requests with the node identity. */
function thresholdCoordinator(
  nodes: ReadonlyMap<string, string> | undefined,
  identity: NodeIdentity,
  log: Logger,
  link?: ShareNodeLink,
): ThresholdCoordinator | null {
  if (!nodes || nodes.size === 0) return null;
  log.info(
    { nodeKey: b64u.encode(identity.publicKey), shareNodes: [...nodes.keys()] },
    "threshold keys: allow this node key on the share nodes (--allow-node)",
  );
  return new ThresholdCoordinator({
    signer: { publicKey: identity.publicKey, sign: (m) => identity.signShareRequest(m) },
    nodes,
    link,
    onBadPartial: (bad) =>
      log.warn({ shareNodes: bad }, "share nodes gave partials that failed their proofs"),
  });
}
