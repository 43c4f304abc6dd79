/**
 * `custos server`: runs a node. `--dev` is the quick start, like
 * `vault server -dev`: a SQLite file in a temporary (or given) directory,
 * initialised 2-of-3 with development custodians whose keys sit next to the
 * data, unsealed automatically, the root token printed — and loudly not for
 * production, since whoever reads that directory holds the root key.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import pino from "pino";
import { parseAllowedOrigin } from "../../api/browser-guard.js";
import { reloadPolicy } from "../../api/policy-reload.js";
import { type CustosNode, listen, openNode } from "../../api/server.js";
import { type AuditContextConfig, auditContextConfig } from "../../audit/audit-context.js";
import { Auditor } from "../../audit/auditor.js";
import type { WitnessConfig } from "../../audit/witness-collector.js";
import { readWitnessPublicKeyFile } from "../../audit/witness-key.js";
import { type RepositoryConfig, readRepositoryConfig } from "../../repository/config.js";
import type { ShareNodeLink } from "../../threshold/share-node-link.js";
import { CliError, EXIT } from "../client.js";
import { devBootstrap, startDevSwtpm, stopDevSwtpm, swtpmInstalled } from "../dev-node.js";
import { collect } from "../io.js";
import { jwtVerifier, loadPolicy, tlsFiles } from "../server-access.js";
import { type LimitFlags, limitOptions, limitsFrom } from "../server-limits.js";
import { shareNodeLink } from "../share-node-access.js";

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw new CliError(`--listen '${value}' must be HOST:PORT`, EXIT.usage);
  return { host: m[1] ?? m[2] ?? "127.0.0.1", port };
}

export function serverCommand(program: Command): void {
  limitOptions(program.command("server"))
    .description("run a custos node")
    .option("--data-dir <dir>", "where the node keeps its SQLite store (required unless --dev)")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8200")
    .option(
      "--dev",
      "development mode: temporary store, initialised and unsealed automatically; NOT FOR PRODUCTION",
    )
    .option("--dev-root-token <token>", "in --dev mode, also accept this root token")
    .option("--destruction-wait-seconds <s>", "waiting period before a scheduled key destruction", Number)
    .option("--witness <url>", "a witness to collect countersignatures from (repeatable)", collect)
    .option(
      "--witness-key <file>",
      "a witness public key file; only these sign for this node (repeatable)",
      collect,
    )
    .option("--witness-interval <seconds>", "how often to ask the witnesses", Number, 5)
    .option(
      "--identifying-context-keys <k,...>",
      "context keys that identify a patient or record: HMAC'd in the audit log, searched by --patient (default patient,patientId,mrn,record,recordId)",
    )
    .option(
      "--clear-context-keys <k,...>",
      "context keys whose values the audit log keeps in the clear; every other key is HMAC'd ('' for none; default institution,department)",
    )
    .option("--tpm <address>", "this node's TPM: swtpm:HOST:PORT or device:/dev/tpmrm0 (default: CUSTOS_TPM)")
    .option("--no-tpm", "in --dev mode, do not start a swtpm even if it is installed")
    .option(
      "--repositories <file>",
      "YAML naming the share repositories of the custody tree (directory, postgres, share-node); credentials stay in it",
    )
    .option(
      "--share-node <name=url>",
      "a share node for threshold keys (repeatable); allow this node's key on it (logged at start)",
      collect,
    )
    .option("--share-node-ca <file>", "verify share nodes' HTTPS certificates against this CA (PEM)")
    .option(
      "--share-node-client-cert <file>",
      "client certificate (PEM) for share nodes that require mutual TLS",
    )
    .option("--share-node-client-key <file>", "its private key (PEM)")
    .option(
      "--insecure-share-node-http",
      "allow plain http:// share nodes (and share-node repositories) that are not on loopback",
    )
    .option(
      "--tpm-seal [pcrs]",
      "seal the root key to the TPM at the next unseal (comma-separated SHA-256 PCRs, default 7), so restarts need no custodians",
    )
    .option(
      "--policy <file>",
      "policy document deciding every request (default: CUSTOS_POLICY); reloaded on SIGHUP. Without one, the built-in role table decides",
    )
    .option("--jwks-file <file>", "accept bearer JWTs signed by these keys (a JWKS document); needs --policy")
    .option("--jwks-url <url>", "accept bearer JWTs signed by the keys at this JWKS URL; needs --policy")
    .option("--jwt-issuer <iss>", "the issuer (iss) JWTs must name")
    .option("--jwt-audience <aud>", "the audience (aud) JWTs must name")
    .option("--tls-cert <file>", "listen with HTTPS: the server's certificate chain (PEM)")
    .option("--tls-key <file>", "the server's private key (PEM)")
    .option(
      "--tls-client-ca <file>",
      "mutual TLS: verify client certificates against this CA (PEM); the policy maps them to principals",
    )
    .option(
      "--allowed-origin <origin>",
      "a browser origin (https://host[:port]) allowed to call the API (repeatable); requests from any other Origin are refused",
      collect,
    )
    .option("--log-level <level>", "pino log level", "info")
    .action(
      async (
        opts: {
          dataDir?: string;
          listen: string;
          dev?: boolean;
          devRootToken?: string;
          destructionWaitSeconds?: number;
          witness?: string[];
          witnessKey?: string[];
          witnessInterval: number;
          identifyingContextKeys?: string;
          clearContextKeys?: string;
          tpm?: string | false;
          tpmSeal?: string | true;
          repositories?: string;
          shareNode?: string[];
          shareNodeCa?: string;
          shareNodeClientCert?: string;
          shareNodeClientKey?: string;
          insecureShareNodeHttp?: boolean;
          policy?: string;
          jwksFile?: string;
          jwksUrl?: string;
          jwtIssuer?: string;
          jwtAudience?: string;
          tlsCert?: string;
          tlsKey?: string;
          tlsClientCa?: string;
          allowedOrigin?: string[];
          logLevel: string;
        } & LimitFlags,
      ) => {
        if (!opts.dev && !opts.dataDir)
          throw new CliError("give --data-dir DIR (or --dev for a development server)", EXIT.usage);
        if (opts.devRootToken && !opts.dev)
          throw new CliError("--dev-root-token only makes sense with --dev", EXIT.usage);
        const wait = opts.destructionWaitSeconds;
        if (wait !== undefined && (!Number.isInteger(wait) || wait < 0)) {
          throw new CliError("--destruction-wait-seconds must be a non-negative integer", EXIT.usage);
        }
        const { host, port } = parseListen(opts.listen);
        const limits = limitsFrom(opts);
        const policy = loadPolicy(opts.policy ?? process.env.CUSTOS_POLICY);
        const jwt = jwtVerifier(opts, policy);
        const tls = tlsFiles(opts, policy);
        const witnesses = witnessConfig(opts.witness, opts.witnessKey, opts.witnessInterval);
        const auditContext = contextKeys(opts.identifyingContextKeys, opts.clearContextKeys);
        const allowedOrigins = (opts.allowedOrigin ?? []).map((o) => {
          try {
            return parseAllowedOrigin(o);
          } catch (err) {
            throw new CliError(`--allowed-origin: ${(err as Error).message}`, EXIT.usage);
          }
        });
        const link = shareNodeLink(opts);
        const shareNodes = parseShareNodes(opts.shareNode, link);
        const repositories = repositoriesFrom(opts.repositories, link);
        // Files the node creates (database, WAL, dev keys) are the owner's alone.
        process.umask(0o077);
        const log = pino({ level: opts.logLevel }, pino.destination(2));
        const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "custos-dev-"));
        const tpmSealPcrs =
          opts.tpmSeal === undefined ? null : parsePcrs(opts.tpmSeal === true ? "7" : opts.tpmSeal);
        let tpm = opts.tpm === false ? undefined : (opts.tpm ?? process.env.CUSTOS_TPM);
        let devSwtpm: string | null = null;
        if (opts.dev && tpm === undefined && opts.tpm !== false && swtpmInstalled()) {
          devSwtpm = join(dataDir, "swtpm");
          tpm = startDevSwtpm(devSwtpm);
        }
        if (tpmSealPcrs && !tpm) throw new CliError("--tpm-seal needs a TPM (--tpm ADDRESS)", EXIT.usage);
        let node: CustosNode;
        try {
          node = await openNode({
            dataDir,
            destructionWaitSeconds: wait,
            log,
            witnesses,
            auditContext,
            tpm,
            policy,
            jwt,
            clientCerts: tls?.clientCa !== undefined,
            allowedOrigins,
            shareNodes,
            shareNodeLink: link,
            repositories,
            anonymous: limits.anonymous,
          });
        } catch (err) {
          if (devSwtpm) stopDevSwtpm(devSwtpm);
          throw err;
        }
        if (tpmSealPcrs) node.tpm?.enable(tpmSealPcrs, "operator");
        if (node.tpm && node.seal.initialized && node.seal.sealed) {
          const why = node.tpm.statusNow().lastError;
          if (why) process.stderr.write(`custos: starting sealed: ${why}\n`);
        }
        const running = await listen(node, host, port, tls, limits.http);
        let rootToken: string | null = null;
        if (opts.dev) rootToken = await devBootstrap(node, dataDir, opts.devRootToken);
        log.info(
          {
            url: running.url,
            dataDir,
            sealed: node.seal.sealed,
            tpm: tpm ?? null,
            tpmSeal: node.tpm?.statusNow().state ?? "off",
            policy: policy ? { file: policy.file, digest: policy.digest } : null,
          },
          "custos listening",
        );
        if (opts.dev) {
          process.stdout.write(
            [
              "",
              "==================================================================",
              " DEVELOPMENT MODE — NOT FOR PRODUCTION",
              " The custodians' keys and shares are stored next to the data in",
              ` ${join(dataDir, "dev")}; anyone who reads it holds the root key.`,
              "==================================================================",
              "",
              `   export CUSTOS_ADDR='${running.url}'`,
              ...(rootToken
                ? [`   export CUSTOS_TOKEN='${rootToken}'`]
                : ["   (root token printed when this directory was initialised)"]),
              "",
            ].join("\n"),
          );
        }
        // Last, so that whoever waits for this line sees everything above it.
        process.stdout.write(`custos listening on ${running.url} (data in ${dataDir})\n`);
        const stop = (signal: string) => {
          log.info({ signal }, "shutting down");
          running
            .close()
            .finally(() => {
              if (devSwtpm) stopDevSwtpm(devSwtpm);
            })
            .then(
              () => process.exit(0),
              () => process.exit(1),
            );
        };
        if (policy) {
          // A refused document is logged and the running policy stays; the reload is audited either way.
          process.on("SIGHUP", () => {
            reloadPolicy(policy, new Auditor(node.store), { principal: "operator (SIGHUP)" }, log).catch(
              (err: unknown) =>
                log.error({ err }, "policy reload could not be audited; the running policy stays"),
            );
          });
        }
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      },
    );
}

function parsePcrs(value: string): number[] {
  const pcrs = value.split(",").map((p) => Number(p.trim()));
  if (pcrs.length === 0 || pcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) {
    throw new CliError(`--tpm-seal '${value}' must be PCR indices 0..23, comma-separated`, EXIT.usage);
  }
  return pcrs;
}

/** The audit context configuration from the comma-separated flags, checked before the node opens. */
function contextKeys(identifying?: string, clear?: string): AuditContextConfig {
  const list = (v?: string) =>
    v === undefined
      ? undefined
      : v
          .split(",")
          .map((k) => k.trim())
          .filter((k) => k.length > 0);
  try {
    return auditContextConfig({ identifying: list(identifying), clear: list(clear) });
  } catch (err) {
    throw new CliError(
      `${(err as Error).message} (--identifying-context-keys, --clear-context-keys)`,
      EXIT.usage,
    );
  }
}

/** The witnesses a node collects countersignatures from: URLs to poll, and the keys it accepts. */
function witnessConfig(
  urls: string[] | undefined,
  keyFiles: string[] | undefined,
  intervalSeconds: number,
): WitnessConfig | undefined {
  if (!urls?.length && !keyFiles?.length) return undefined;
  if (!urls?.length || !keyFiles?.length) {
    throw new CliError("give --witness URL and --witness-key FILE together (each repeatable)", EXIT.usage);
  }
  if (!(intervalSeconds >= 0.05 && intervalSeconds <= 86400)) {
    throw new CliError("--witness-interval must be a number of seconds between 0.05 and 86400", EXIT.usage);
  }
  const keys = keyFiles.map((file) => {
    try {
      return readWitnessPublicKeyFile(file);
    } catch (err) {
      throw new CliError(`--witness-key ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  });
  return { urls, keys, intervalMs: intervalSeconds * 1000 };
}

/** `--share-node NAME=URL`, repeatable, into a map; names as in docs/FORMATS.md §11, URLs as `link` allows. */
export function parseShareNodes(values: string[] | undefined, link: ShareNodeLink): Map<string, string> {
  const nodes = new Map<string, string>();
  for (const v of values ?? []) {
    const m = /^([a-z0-9][a-z0-9._-]{0,63})=(https?:\/\/\S+)$/.exec(v);
    if (!m)
      throw new CliError(
        `--share-node '${v}' must be NAME=URL (name: lowercase letters, digits, . _ -)`,
        EXIT.usage,
      );
    if (nodes.has(m[1]!)) throw new CliError(`--share-node '${m[1]}' is given twice`, EXIT.usage);
    try {
      link.check(m[2]!);
    } catch (err) {
      throw new CliError(`--share-node ${m[1]}: ${(err as Error).message}`, EXIT.usage);
    }
    nodes.set(m[1]!, m[2]!);
  }
  return nodes;
}

/** `--repositories FILE`, read and checked before the node opens (the file's credentials are never printed). */
function repositoriesFrom(file: string | undefined, link: ShareNodeLink): RepositoryConfig | undefined {
  if (file === undefined) return undefined;
  try {
    return readRepositoryConfig(file, link);
  } catch (err) {
    throw new CliError(`--repositories ${file}: ${(err as Error).message}`, EXIT.usage);
  }
}
