/**
 * Where custos spends its time under envelope load: runs the real
 * `custos server --dev` with `node --cpu-prof`, drives one workload with
 * autocannon as bench/envelope.ts does (64 connections, warm-up, then a
 * measured run), samples each of the server's threads' CPU time from /proc
 * during the measured run, stops the server (which writes the profiles) and
 * summarises the samples taken during the measured run only.
 *
 *   BENCH_SECONDS=10 npx tsx bench/profile.ts
 *
 * Environment: BENCH_SECONDS (default 10), BENCH_WARMUP_SECONDS (default 3),
 * BENCH_CONNECTIONS (default 64), BENCH_PROFILE_WORKLOAD (datakey | decrypt |
 * bare — the last profiles bench/bare-server.ts instead, for comparison;
 * default datakey), BENCH_PROF_DIR (default /tmp/prof; each run writes to a
 * new subdirectory), BENCH_TOP (default 15). Linux only (/proc).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { type CpuProfile, formatSummary, summarise } from "./cpuprofile-summary.js";
import { type LoadRequest, type LoadResult, load, stopLoad } from "./load.js";
import { call, envInt, type ServerProcess, startBare, startCustos, stopAll } from "./servers.js";

const SECONDS = envInt("BENCH_SECONDS", 10);
const WARMUP_SECONDS = envInt("BENCH_WARMUP_SECONDS", 3);
const CONNECTIONS = envInt("BENCH_CONNECTIONS", 64);
const TOP = envInt("BENCH_TOP", 15);
const WORKLOAD = process.env.BENCH_PROFILE_WORKLOAD ?? "datakey";
const PROF_DIR = process.env.BENCH_PROF_DIR ?? "/tmp/prof";
const KEY = "bench-key";
const USE = { purpose: "TREAT", context: { patient: "p1", institution: "nyu" } } as const;
const CLK_TCK = 100;

const log = (line: string) => process.stderr.write(`${line}\n`);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

interface ThreadCpu {
  tid: string;
  name: string;
  ticks: number;
}

/** utime + stime of every thread of `pid`, in clock ticks. */
function threadCpu(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat
        .slice(close + 2)
        .split(" ")
        .map((f) => Number(f));
      // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
      out.push({ tid, name, ticks: (fields[11] ?? 0) + (fields[12] ?? 0) });
    } catch {
      // thread ended
    }
  }
  return out;
}

function check(name: string, r: LoadResult): void {
  if (r.errors + r.timeouts + r.non2xx + r.mismatches > 0 || r["2xx"] === 0) {
    throw new Error(
      `${name}: ${r["2xx"]} 2xx, non-2xx ${JSON.stringify(r.statusCodeStats)}, ${r.errors} errors, ${r.timeouts} timeouts`,
    );
  }
}

async function main(): Promise<void> {
  if (WORKLOAD !== "datakey" && WORKLOAD !== "decrypt" && WORKLOAD !== "bare") {
    throw new Error("BENCH_PROFILE_WORKLOAD must be datakey, decrypt or bare");
  }
  mkdirSync(PROF_DIR, { recursive: true });
  const profDir = mkdtempSync(join(PROF_DIR, `${WORKLOAD}-`));
  const dataDir = mkdtempSync(join(os.tmpdir(), "custos-bench-"));
  const rootToken = `bench-${randomBytes(24).toString("base64url")}`;
  let result: LoadResult;
  let window: { fromUs: number; toUs: number };
  let threads: { name: string; tid: string; cores: number }[];
  try {
    try {
      const nodeFlags = ["--cpu-prof", `--cpu-prof-dir=${profDir}`];
      let server: ServerProcess;
      let request: LoadRequest;
      if (WORKLOAD === "bare") {
        server = await startBare(nodeFlags);
        request = {
          method: "POST",
          path: "/bare",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(USE),
        };
      } else {
        server = await startCustos({ rootToken, dataDir, nodeFlags });
        await call(server.url, "/v1/keys", { token: rootToken, body: { name: KEY }, expect: 201 });
        const dk = await call<{ ciphertext: string }>(server.url, `/v1/keys/${KEY}/datakey`, {
          token: rootToken,
          body: USE,
        });
        request = {
          method: "POST",
          path: `/v1/keys/${KEY}/${WORKLOAD}`,
          headers: { "content-type": "application/json", authorization: `Bearer ${rootToken}` },
          body: JSON.stringify(WORKLOAD === "datakey" ? USE : { ...USE, ciphertext: dk.ciphertext }),
        };
      }
      const pid = server.child.pid;
      if (pid === undefined) throw new Error(`${server.name} has no pid`);
      log(`${server.name} (pid ${pid}) at ${server.url}, profiles to ${profDir}`);
      const base = {
        url: server.url,
        connections: CONNECTIONS,
        pipelining: 1,
        timeout: 10,
        requests: [request],
      };
      log(`${WORKLOAD}: warm-up ${WARMUP_SECONDS} s, then ${SECONDS} s measured under the profiler…`);
      check("warm-up", await load({ ...base, duration: WARMUP_SECONDS }));
      const before = threadCpu(pid);
      const fromUs = nowUs();
      result = await load({ ...base, duration: SECONDS });
      const toUs = nowUs();
      const after = threadCpu(pid);
      check(WORKLOAD, result);
      window = { fromUs, toUs };
      const wallS = (toUs - fromUs) / 1e6;
      threads = after
        .map((t) => {
          const was = before.find((b) => b.tid === t.tid)?.ticks ?? 0;
          return {
            name: t.tid === String(pid) ? `${t.name} (main thread)` : t.name,
            tid: t.tid,
            cores: (t.ticks - was) / CLK_TCK / wallS,
          };
        })
        .filter((t) => t.cores >= 0.005)
        .sort((a, b) => b.cores - a.cores);
      log(
        `${WORKLOAD}: ${result.requests.mean.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms (profiled)`,
      );
    } finally {
      stopLoad();
      await stopAll();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }

  const files = readdirSync(profDir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort();
  if (files.length === 0) throw new Error(`no .cpuprofile in ${profDir}`);
  const totalCores = threads.reduce((s, t) => s + t.cores, 0);
  const parts = [
    `## CPU profile: ${WORKLOAD}, ${CONNECTIONS} connections, ${SECONDS} s (${new Date().toISOString()})`,
    "",
    `Under the profiler: ${result.requests.mean.toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms.`,
    "",
    `Server CPU during the measured run (from /proc; ${os.cpus().length} cores): ${totalCores.toFixed(2)} cores in all.`,
    "",
    "| thread | tid | cores |",
    "|---|--:|--:|",
    ...threads.map((t) => `| ${t.name} | ${t.tid} | ${t.cores.toFixed(2)} |`),
    "",
    "Profiles, samples from the measured run only:",
    "",
  ];
  for (const f of files) {
    const profile = JSON.parse(readFileSync(join(profDir, f), "utf8")) as CpuProfile;
    parts.push(formatSummary(summarise(join(profDir, f), profile, window), TOP));
  }
  const report = parts.join("\n");
  writeFileSync(join(profDir, "summary.md"), report);
  process.stdout.write(`${report}\n`);
  log(`written to ${join(profDir, "summary.md")}`);
}

let interrupted = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (interrupted) return;
  interrupted = true;
  log(`\n${signal}: stopping`);
  stopLoad();
  setTimeout(() => {
    stopAll().finally(() => process.exit(130));
  }, 15_000).unref();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

main().then(
  () => process.exit(interrupted ? 130 : 0),
  (err: unknown) => {
    log(`\nprofile failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(interrupted ? 130 : 1);
  },
);
