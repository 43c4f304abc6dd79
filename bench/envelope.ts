/**
 * Envelope throughput over HTTP, as a ratio to a bare hono route measured in
 * the same run on the same machine.
 *
 *   BENCH_SECONDS=10 npx tsx bench/envelope.ts      (npm run bench)
 *
 * Starts two child processes on loopback, port 0: the real
 * `custos server --dev` (SQLite in a fresh temporary directory, durable audit:
 * every request appends an audit event that is fsynced, group-committed,
 * before the response) and bench/bare-server.ts. This process drives both
 * with autocannon, 64 connections, pipelining 1: the bare route, then
 * datakey, decrypt and a datakey+decrypt mix against custos, then the bare
 * route again; the baseline is the mean of the two bare runs, which damps
 * drift on a noisy machine. Each workload has a warm-up run, then a measured
 * run. Any non-2xx response, error or timeout fails the run. After the run
 * the audit table is counted to check every answered request was audited.
 *
 * Prints the table and appends it, with the machine and the command, to
 * bench/RESULTS.md. Fixed durations, loopback only; the servers are stopped
 * and the temporary directory removed in `finally` and on SIGINT/SIGTERM.
 *
 * Environment: BENCH_SECONDS (measured seconds per workload, default 10),
 * BENCH_WARMUP_SECONDS (default 3), BENCH_CONNECTIONS (default 64),
 * BENCH_NO_WRITE=1 (do not touch RESULTS.md), BENCH_CUSTOS_BIN (another
 * checkout's bin/custos.js, for A/B runs; default this checkout's),
 * BENCH_POLICY=1 (custos runs `--policy` with policies/examples/consortium.yaml;
 * tokens for `lee`, a key-admin of NYU, and `nyu-ehr-store` are minted by the
 * root token on a first start without the policy; the load then runs as
 * `nyu-ehr-store` on key `ehr-nyu-bench`, allowed by the policy's first grant
 * with its context condition — see bootstrapTokens below).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { type LoadRequest, type LoadResult, load, stopLoad } from "./load.js";
import { CUSTOS_BIN, call, envInt, ROOT, startBare, startCustos, stopAll } from "./servers.js";

const RESULTS_MD = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
const POLICY = process.env.BENCH_POLICY === "1";
const KEY = POLICY ? "ehr-nyu-bench" : "bench-key";
const TARGET = 0.6;

const SECONDS = envInt("BENCH_SECONDS", 10);
const WARMUP_SECONDS = envInt("BENCH_WARMUP_SECONDS", 3);
const CONNECTIONS = envInt("BENCH_CONNECTIONS", 64);
const PIPELINING = 1;

const USE = { purpose: "TREAT", context: { patient: "p1", institution: "nyu" } } as const;

interface Measured {
  name: string;
  target: "bare" | "custos";
  warmup: LoadResult;
  result: LoadResult;
}

interface Row {
  name: string;
  rps: number;
  rpsSd: number;
  p50: number;
  p99: number;
  total: number;
  ratio: number | null;
}

/** Set by SIGINT/SIGTERM: the load in progress is stopped and no further workload starts. */
let interrupted: NodeJS.Signals | null = null;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Throws, with the status codes seen, unless every response was 2xx. */
function checkAll2xx(name: string, r: LoadResult): void {
  const bad = r.errors + r.timeouts + r.non2xx + r.mismatches;
  if (bad > 0 || r["2xx"] === 0) {
    throw new Error(
      `${name}: ${r["2xx"]} 2xx, ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodeStats)}, ` +
        `${r.errors} errors (${r.timeouts} timeouts), ${r.mismatches} mismatches`,
    );
  }
}

async function workload(
  name: string,
  target: Measured["target"],
  url: string,
  requests: LoadRequest[],
): Promise<Measured> {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  const base = { url, connections: CONNECTIONS, pipelining: PIPELINING, timeout: 10, requests };
  log(`${name}: warm-up ${WARMUP_SECONDS} s, then ${SECONDS} s measured…`);
  const warmup = await load({ ...base, duration: WARMUP_SECONDS, title: `${name} warm-up` });
  checkAll2xx(`${name} (warm-up)`, warmup);
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  const result = await load({ ...base, duration: SECONDS, title: name });
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  checkAll2xx(name, result);
  log(
    `${name}: ${result.requests.mean.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`,
  );
  return { name, target, warmup, result };
}

function row(m: Measured, bare: number | null): Row {
  const r = m.result;
  return {
    name: m.name,
    rps: r.requests.mean,
    rpsSd: r.requests.stddev,
    p50: r.latency.p50,
    p99: r.latency.p99,
    total: r.requests.total,
    ratio: bare === null ? null : r.requests.mean / bare,
  };
}

const FS_TYPES = new Map<number, string>([
  [0xef53, "ext4"],
  [0x01021994, "tmpfs"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x794c7630, "overlayfs"],
  [0x65735546, "fuse"],
  [0x2fc12fc1, "zfs"],
]);

function machine(dataDir: string): string[] {
  const cpus = os.cpus();
  const models = [...new Set(cpus.map((c) => c.model.trim()))].join(", ");
  let fs = "unknown";
  try {
    const type = Number(statfsSync(dataDir).type);
    fs = FS_TYPES.get(type) ?? `0x${type.toString(16)}`;
  } catch {}
  return [
    `- CPU: ${cpus.length} × ${models}`,
    `- Memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; load average before the run ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
    `- OS: ${os.type()} ${os.release()} (${os.arch()}); Node ${process.version}`,
    `- custos data directory on ${fs} (${dataDir.startsWith(os.tmpdir()) ? "os.tmpdir()" : dataDir})`,
  ];
}

/** Which custos was measured: the checkout's commit, and whether its src/ had uncommitted changes. */
function revision(): string {
  const checkout = dirname(dirname(CUSTOS_BIN));
  const where = checkout === ROOT.replace(/\/$/, "") ? "this checkout" : checkout;
  try {
    const git = (...args: string[]) =>
      execFileSync("git", ["-C", checkout, ...args], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    const head = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--", "src").split("\n").filter(Boolean).length;
    return `- custos: ${where} at ${head}${dirty ? ` with ${dirty} uncommitted change(s) in src/` : ""}`;
  } catch {
    return `- custos: ${where} (not a git checkout)`;
  }
}

function command(): string {
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith("BENCH_"))
    .map(([k, v]) => `${k}=${v}`);
  if (!env.some((e) => e.startsWith("BENCH_SECONDS="))) env.unshift(`BENCH_SECONDS=${SECONDS}`);
  const script = relative(ROOT, process.argv[1] ?? "bench/envelope.ts") || "bench/envelope.ts";
  return [...env, "npx", "tsx", script].join(" ");
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });

function table(rows: Row[]): string {
  const lines = [
    "| workload | req/s (mean ± sd) | p50 ms | p99 ms | requests | custos / bare |",
    "|---|--:|--:|--:|--:|--:|",
  ];
  for (const r of rows) {
    const ratio = r.ratio === null ? "" : `**${(r.ratio * 100).toFixed(1)} %**`;
    lines.push(
      `| ${r.name} | ${fmt(r.rps)} ± ${fmt(r.rpsSd)} | ${r.p50} | ${r.p99} | ${fmt(r.total)} | ${ratio} |`,
    );
  }
  return lines.join("\n");
}

const HEADER = `# Envelope benchmark

\`bench/envelope.ts\` (\`npm run bench\`) measures custos's envelope operations over HTTP
against a bare hono route measured **in the same run on the same machine**, and reports the
ratio. Absolute numbers vary from machine to machine and from run to run (these are
2-core, noisy machines); the ratio is what is compared.

- **Servers**: two child processes on loopback, port 0. custos is the real
  \`node bin/custos.js server --dev --dev-root-token T --data-dir <tmp> --listen 127.0.0.1:0 --log-level warn\`:
  SQLite in WAL mode with \`synchronous = FULL\`, and **durable audit** — each request's audit
  event is committed and fsynced (group commit) before the response. The baseline,
  \`bench/bare-server.ts\`, is a hono app on @hono/node-server served the same way
  (\`node --import tsx\`, \`serve()\`), with one POST route that parses a JSON body of the
  same shape and answers a small JSON object: no validation, auth, crypto, store or audit.
- **Load**: autocannon in the benchmark process (separate from both servers), 64
  connections, pipelining 1; each workload gets a 3 s warm-up and then a measured run
  (\`BENCH_SECONDS\`, default 10 s). Workloads, in order: bare route; \`POST
  /v1/keys/bench-key/datakey\` with \`{"purpose":"TREAT","context":{"patient":"p1","institution":"nyu"}}\`;
  \`POST /v1/keys/bench-key/decrypt\` of one ciphertext under the same purpose and context;
  datakey and decrypt alternating on each connection; bare route again. The baseline is the
  mean of the two bare runs (before and after), which damps drift.
- **Checks**: any non-2xx response, connection error or timeout fails the run; afterwards the
  audit table is counted and must hold at least one event per answered custos request.
- **Columns**: req/s is autocannon's mean of per-second samples (± their standard
  deviation); p50/p99 are response latencies in ms (1 ms resolution); custos / bare is the
  workload's mean req/s over the baseline's. Target: **≥ 60 %** of the bare route with the
  audit durable.

Note that the benchmark process, both servers and custos's SQLite writer thread share the
same cores, so the load generator competes with the server under test; the ratio, not
the absolute req/s, is the result. \`BENCH_CUSTOS_BIN=/other/checkout/bin/custos.js\` measures
another checkout against the same baseline (A/B). Where custos spends its time:
\`npx tsx bench/profile.ts\` runs it under \`node --cpu-prof\` with the datakey load and
summarises the samples of the measured run (\`bench/cpuprofile-summary.ts\`).

<!-- runs: bench/envelope.ts appends below this line; earlier runs stay -->
`;

function writeResults(section: string): void {
  const marker = "<!-- runs:";
  let runs = "";
  if (existsSync(RESULTS_MD)) {
    const old = readFileSync(RESULTS_MD, "utf8");
    const at = old.indexOf(marker);
    if (at >= 0) {
      const eol = old.indexOf("\n", at);
      runs = eol >= 0 ? old.slice(eol + 1) : "";
    } else {
      runs = `\n## Earlier content\n\n${old}\n`;
    }
  }
  const body = `${HEADER}${runs.trimEnd() ? `${runs.trimEnd()}\n` : ""}\n${section}`;
  writeFileSync(RESULTS_MD, body);
}

interface AuditCount {
  operation: string;
  decision: string;
  n: number;
}

function countAudit(dbFile: string): AuditCount[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare(
        "SELECT operation, decision, count(*) AS n FROM audit_events GROUP BY operation, decision ORDER BY n DESC",
      )
      .all() as AuditCount[];
  } finally {
    db.close();
  }
}

/**
 * The consortium policy with what the benchmark needs: the dev root token's
 * principal `root` as NYU's key administrator, and a grant letting key
 * administrators mint tokens (for `nyu-ehr-store`). Written into the data dir.
 */
/**
 * With a policy, tokens are minted as an operator does: by the root token on a
 * first start without the policy (a minted token is its principal, and the
 * policy lets nobody mint for the key administrator or the storage service).
 */
async function bootstrapTokens(rootToken: string, dataDir: string): Promise<{ admin: string; load: string }> {
  const boot = await startCustos({ rootToken, dataDir });
  try {
    const mint = async (principal: string) =>
      (
        await call<{ token: string }>(boot.url, "/v1/tokens", {
          token: rootToken,
          body: { principal, roles: ["service"] },
          expect: 201,
        })
      ).token;
    return { admin: await mint("lee"), load: await mint("nyu-ehr-store") };
  } finally {
    await boot.stop();
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const dataDir = mkdtempSync(join(os.tmpdir(), "custos-bench-"));
  const rootToken = `bench-${randomBytes(24).toString("base64url")}`;
  const machineInfo = [revision(), ...machine(dataDir)];
  const measured: Measured[] = [];
  const answered = { datakey: 0, decrypt: 0 };
  let audit: AuditCount[];
  try {
    try {
      log(`starting servers (custos data in ${dataDir})…`);
      const tokens = POLICY ? await bootstrapTokens(rootToken, dataDir) : null;
      const serverFlags = [
        "--no-tpm",
        ...(POLICY ? ["--policy", join(ROOT, "policies/examples/consortium.yaml")] : []),
      ];
      const [bare, c] = await Promise.all([startBare(), startCustos({ rootToken, dataDir, serverFlags })]);
      const custos = c;
      log(`bare at ${bare.url}, custos at ${custos.url}`);

      const admin = { token: tokens?.admin ?? rootToken, purpose: "HSYSADMIN" };
      await call(custos.url, "/v1/keys", { ...admin, body: { name: KEY }, expect: 201 });
      // With a policy the load runs as the storage service; without, as root, as before.
      const loadToken = tokens?.load ?? rootToken;
      const dk = await call<{ ciphertext: string; plaintext: string; keyVersion: number }>(
        custos.url,
        `/v1/keys/${KEY}/datakey`,
        { token: loadToken, body: USE },
      );
      const opened = await call<{ plaintext: string }>(custos.url, `/v1/keys/${KEY}/decrypt`, {
        token: loadToken,
        body: { ...USE, ciphertext: dk.ciphertext },
      });
      if (opened.plaintext !== dk.plaintext) throw new Error("decrypt did not return the data key");

      const json = { "content-type": "application/json" };
      const auth = { ...json, authorization: `Bearer ${loadToken}` };
      const bareReq: LoadRequest = {
        method: "POST",
        path: "/bare",
        headers: json,
        body: JSON.stringify(USE),
      };
      const datakeyReq: LoadRequest = {
        method: "POST",
        path: `/v1/keys/${KEY}/datakey`,
        headers: auth,
        body: JSON.stringify(USE),
      };
      const decryptReq: LoadRequest = {
        method: "POST",
        path: `/v1/keys/${KEY}/decrypt`,
        headers: auth,
        body: JSON.stringify({ ...USE, ciphertext: dk.ciphertext }),
      };

      measured.push(await workload("bare (before)", "bare", bare.url, [bareReq]));
      measured.push(await workload("datakey", "custos", custos.url, [datakeyReq]));
      measured.push(await workload("decrypt", "custos", custos.url, [decryptReq]));
      measured.push(await workload("datakey + decrypt", "custos", custos.url, [datakeyReq, decryptReq]));
      measured.push(await workload("bare (after)", "bare", bare.url, [bareReq]));
    } finally {
      stopLoad();
      await stopAll();
    }
    // Every answered custos request must have its audit event (checked below).
    audit = countAudit(join(dataDir, "custos.db"));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }

  const bareRuns = measured.filter((m) => m.target === "bare");
  const bareMean = bareRuns.reduce((s, m) => s + m.result.requests.mean, 0) / bareRuns.length;
  const rows: Row[] = [
    ...bareRuns.map((m) => row(m, null)),
    {
      name: "bare (mean: baseline)",
      rps: bareMean,
      rpsSd: Math.sqrt(bareRuns.reduce((s, m) => s + m.result.requests.stddev ** 2, 0) / bareRuns.length),
      // the worse of the two bare runs
      p50: Math.max(...bareRuns.map((m) => m.result.latency.p50)),
      p99: Math.max(...bareRuns.map((m) => m.result.latency.p99)),
      total: bareRuns.reduce((s, m) => s + m.result.requests.total, 0),
      ratio: 1,
    },
    ...measured.filter((m) => m.target === "custos").map((m) => row(m, bareMean)),
  ];
  const [before, after] = bareRuns;
  const drift =
    before && after
      ? (after.result.requests.mean - before.result.requests.mean) / before.result.requests.mean
      : 0;

  // 2xx answers per operation, warm-ups and the set-up calls included (the mix alternates,
  // so it is split evenly, rounding down); the audit must hold at least that many events.
  answered.datakey += 1;
  answered.decrypt += 1;
  for (const m of measured.filter((x) => x.target === "custos")) {
    const ok = m.warmup["2xx"] + m.result["2xx"];
    if (m.name === "datakey") answered.datakey += ok;
    else if (m.name === "decrypt") answered.decrypt += ok;
    else {
      answered.datakey += Math.floor(ok / 2);
      answered.decrypt += Math.floor(ok / 2);
    }
  }
  const n = (op: string) =>
    audit.filter((a) => a.operation === op && a.decision === "allow").reduce((s, a) => s + a.n, 0);
  const denied = audit.filter((a) => a.decision !== "allow").reduce((s, a) => s + a.n, 0);
  const auditLine =
    `audit: ${fmt(n("keys.datakey"))} keys.datakey and ${fmt(n("keys.decrypt"))} keys.decrypt events (allow), ` +
    `${denied} denials, for ${fmt(answered.datakey)} datakey and ${fmt(answered.decrypt)} decrypt 2xx answers ` +
    "(warm-ups included)";
  if (n("keys.datakey") < answered.datakey || n("keys.decrypt") < answered.decrypt || denied > 0) {
    throw new Error(`audit check failed: ${auditLine}\n${JSON.stringify(audit)}`);
  }

  const custosRows = measured.filter((m) => m.target === "custos").map((m) => row(m, bareMean));
  const verdicts = custosRows.map(
    (r) =>
      `${r.name} ${((r.ratio ?? 0) * 100).toFixed(1)} % ${(r.ratio ?? 0) >= TARGET ? "(meets" : "(BELOW"} the ${TARGET * 100} % target)`,
  );
  const stamp = started.toISOString().replace("T", " ").slice(0, 16);
  const section = [
    `## ${stamp} UTC — ${CONNECTIONS} connections, ${SECONDS} s per workload`,
    "",
    `Command: \`${command()}\``,
    "",
    ...machineInfo,
    "",
    table(rows),
    "",
    `- Ratio of mean req/s to the bare baseline: ${verdicts.join("; ")}.`,
    `- Bare drift, after vs before: ${drift >= 0 ? "+" : ""}${(drift * 100).toFixed(1)} %` +
      `${Math.abs(drift) > 0.1 ? " (high: the machine was busy; rerun before comparing)" : ""}.`,
    `- All responses 2xx, no errors or timeouts; ${auditLine}.`,
    "",
  ].join("\n");

  process.stdout.write(`\n${section}`);
  if (process.env.BENCH_NO_WRITE !== "1") {
    writeResults(section);
    log(`\nappended to ${relative(ROOT, RESULTS_MD)}`);
  }
}

const onSignal = (signal: NodeJS.Signals) => {
  if (interrupted) return;
  interrupted = signal;
  log(`\n${signal}: stopping the load; the servers are stopped next`);
  stopLoad();
  // If the run does not wind down by itself (stuck in start-up), stop the servers and leave.
  setTimeout(() => {
    stopAll().finally(() => process.exit(130));
  }, 15_000).unref();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (interrupted) {
      log(`bench interrupted by ${interrupted}; servers stopped`);
      process.exit(130);
    }
    log(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
