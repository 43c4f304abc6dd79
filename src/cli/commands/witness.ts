/**
 * `custos witness`: runs a witness (docs/FORMATS.md §8.3) — another
 * hospital's process that polls one or more nodes' signed heads, checks and
 * countersigns them, keeps its own copy, and serves it read-only over HTTP.
 * `custos witness keygen` makes its key pair. The witness reads each node
 * with an auditor token (reads of the head are audited by the node like any
 * other), given per log with `--token-file` or once through CUSTOS_TOKEN.
 */
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Command } from "commander";
import pino from "pino";
import { createWitnessApp } from "../../api/witness-app.js";
import type { TreeHeadJson } from "../../audit/tree-head.js";
import { type LogSource, Witness } from "../../audit/witness.js";
import {
  generateWitnessKey,
  readWitnessPrivateKeyFile,
  writeWitnessKeyFiles,
} from "../../audit/witness-key.js";
import { WitnessStore } from "../../audit/witness-store.js";
import { FormatError } from "../../custody/format-error.js";
import { CliError, Client, EXIT } from "../client.js";
import { collect } from "../io.js";
import { parseListen } from "./server.js";

interface RunOptions {
  listen: string;
  log?: string[];
  logKey?: string[];
  tokenFile?: string[];
  key?: string;
  dataDir?: string;
  interval: string;
  logLevel: string;
}

function readToken(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new CliError(
      `cannot read token file '${file}': ${(err as NodeJS.ErrnoException).code ?? err}`,
      EXIT.usage,
    );
  }
}

/** An HTTP log source: the node's head and consistency proofs, read with an auditor token. */
function httpSource(url: string, token: string | undefined, pinnedKey: string | undefined): LogSource {
  const client = new Client({ addr: url, token });
  return {
    url: client.addr,
    ...(pinnedKey === undefined ? {} : { pinnedKey }),
    head: () => client.request<TreeHeadJson>("GET", "/v1/audit/head"),
    consistency: async (from, to) =>
      (await client.request<{ proof: string[] }>("GET", `/v1/audit/proof/consistency?from=${from}&to=${to}`))
        .proof,
    headAtMost: async (size) => {
      try {
        return await client.request<TreeHeadJson>("GET", `/v1/audit/head?atMost=${size}`);
      } catch (err) {
        if (err instanceof CliError && err.code === "no_tree_head") return null;
        throw err;
      }
    },
  };
}

/** Pairs a repeatable per-log option with the logs: none, one for all, or one per log in order. */
function perLog(values: string[] | undefined, logs: number, option: string): (string | undefined)[] {
  if (values === undefined || values.length === 0) return Array(logs).fill(undefined);
  if (values.length === 1 && option === "--token-file") return Array(logs).fill(values[0]);
  if (values.length !== logs) {
    throw new CliError(
      `give ${option} once per --log, in the same order (${logs} logs, ${values.length} given)`,
      EXIT.usage,
    );
  }
  return values;
}

export function witnessCommand(program: Command, globalToken: () => string | undefined): void {
  const witness = program
    .command("witness")
    .description("run a witness: poll nodes' signed audit heads, check and countersign them, serve them")
    .option("--listen <host:port>", "address to serve the witness API on", "127.0.0.1:8300")
    .option("--log <url>", "a custos node to witness (repeatable)", collect)
    .option(
      "--log-key <b64u>",
      "pin the node's audit key instead of trusting it on first sight (once per --log)",
      collect,
    )
    .option(
      "--token-file <file>",
      "auditor token for the node (once, or once per --log; default CUSTOS_TOKEN)",
      collect,
    )
    .option("--key <file>", "the witness's private key file (custos witness keygen)")
    .option("--data-dir <dir>", "where the witness keeps its heads, countersignatures and evidence")
    .option("--interval <seconds>", "how often to poll each node", "10")
    .option("--log-level <level>", "pino log level", "info")
    .action(async (opts: RunOptions) => {
      const logs = opts.log ?? [];
      if (logs.length === 0) throw new CliError("give at least one --log URL (a custos node)", EXIT.usage);
      if (!opts.key)
        throw new CliError("give --key FILE (make one with: custos witness keygen --out NAME)", EXIT.usage);
      if (!opts.dataDir) throw new CliError("give --data-dir DIR for the witness's own record", EXIT.usage);
      const interval = Number(opts.interval);
      if (!(interval >= 0.05 && interval <= 86400)) {
        throw new CliError("--interval must be a number of seconds between 0.05 and 86400", EXIT.usage);
      }
      const { host, port } = parseListen(opts.listen);
      const keys = perLog(opts.logKey, logs.length, "--log-key");
      for (const k of keys) {
        if (k !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(k)) {
          throw new CliError(
            `--log-key '${k}' must be a node's audit key: 43 base64url characters`,
            EXIT.usage,
          );
        }
      }
      const tokens = perLog(opts.tokenFile, logs.length, "--token-file").map((f) =>
        f === undefined ? globalToken() : readToken(f),
      );
      process.umask(0o077);
      let key: ReturnType<typeof readWitnessPrivateKeyFile>;
      try {
        key = readWitnessPrivateKeyFile(opts.key);
      } catch (err) {
        if (err instanceof FormatError)
          throw new CliError(`${opts.key}: not a usable witness key (${err.message})`, EXIT.usage);
        throw err;
      }
      const log = pino({ level: opts.logLevel }, pino.destination(2));
      const store = WitnessStore.open(opts.dataDir);
      const w = new Witness(store, key, log);
      const sources = logs.map((url, i) => httpSource(url, tokens[i], keys[i]));
      const app = createWitnessApp({ witness: w, urls: sources.map((s) => s.url), log });
      const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, hostname: host, port }, () => resolve(s));
        s.once("error", reject);
      });
      const address = server.address() as AddressInfo;
      const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
      w.start(sources, interval * 1000);
      log.info({ url, witness: key.witness, logs: sources.map((s) => s.url) }, "custos witness listening");
      process.stdout.write(
        `custos witness listening on ${url} (witness ${key.witness}, key ${key.fingerprint}, data in ${opts.dataDir})\n`,
      );
      const stop = (signal: string) => {
        log.info({ signal }, "witness shutting down");
        (server as Server).closeAllConnections();
        server.close();
        w.stop().then(
          () => {
            store.close();
            key.secretKey.dispose();
            process.exit(0);
          },
          () => process.exit(1),
        );
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });

  witness
    .command("keygen")
    .description("make a witness key pair: NAME.key (private, mode 0600) and NAME.pub (give it to the nodes)")
    .requiredOption("--out <path>", "path prefix of the two files (NAME.key and NAME.pub)")
    .option("--name <name>", "the witness's name (default: the base name of --out)")
    .action((opts: { out: string; name?: string }) => {
      const name = opts.name ?? opts.out.split(/[\\/]/).pop() ?? "";
      let key: ReturnType<typeof generateWitnessKey>;
      try {
        key = generateWitnessKey(name);
      } catch (err) {
        throw new CliError(`${(err as Error).message}; choose one with --name`, EXIT.usage);
      }
      try {
        const { privatePath, publicPath } = writeWitnessKeyFiles(opts.out, key);
        process.stdout.write(
          `Witness key for '${key.witness}' (${key.fingerprint}):\n` +
            `  ${privatePath}  private, keep it with the witness (mode 0600)\n` +
            `  ${publicPath}  public: give it to each node (custos server --witness-key) and to auditors\n`,
        );
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") {
          throw new CliError(
            `'${opts.out}.key' or '${opts.out}.pub' already exists; refusing to overwrite it`,
            EXIT.usage,
          );
        }
        throw err;
      } finally {
        key.secretKey.dispose();
      }
    });
}
