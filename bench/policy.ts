/**
 * What the policy decision costs per request: `PolicyEngine.decide()` (and
 * the token holder's resolution to a policy principal) on
 * policies/examples/consortium.yaml, against a no-op authoriser and the
 * first-cut role table, in the same process and run. The mix is the
 * envelope hot path's shapes: a storage service's datakey on its own key
 * (first grant, with a context condition), a clinician's cross-hospital
 * decrypt (third grant), a denial (every grant and break-glass scanned),
 * and a break-glass decrypt. The figure to compare with the envelope
 * benchmark is ns per decision against its ~300 µs per request.
 *
 * Second part, because on a shared 2-core machine two HTTP runs minutes
 * apart differ by more than 5 % on their own: the whole request in one
 * process — `app.request()` datakey, 64 in flight, durable audit included —
 * on two nodes, one with the role table and one with the consortium policy,
 * in alternating rounds so that both see the same machine. The ratio of
 * their medians is the policy's share of the envelope hot path (JSON body
 * read by the gate, identity resolution, decide(), the audit annotation).
 *
 *   npx tsx bench/policy.ts            (BENCH_ROUNDS, BENCH_CALLS to change the run)
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { type CustosNode, openNode } from "../src/api/server.js";
import { b64u } from "../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../src/crypto/hpke.js";
import { hashToken } from "../src/crypto/token.js";
import { type AuthzRequest, type Decision, RoleAuthorizer } from "../src/policy/authorizer.js";
import { PolicyEngine } from "../src/policy/engine.js";

const CONSORTIUM = fileURLToPath(new URL("../policies/examples/consortium.yaml", import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const HTTP_ROUNDS = Number(process.env.BENCH_HTTP_ROUNDS ?? 6);
const HTTP_REQUESTS = Number(process.env.BENCH_HTTP_REQUESTS ?? 3000);
const CALLS = Number(process.env.BENCH_CALLS ?? 400_000);

const engine = PolicyEngine.fromFile(CONSORTIUM);
const roles = new RoleAuthorizer();
const who = (id: string) => {
  const p = engine.resolve({ id, roles: [] });
  if (!p) throw new Error(`${id} is not in the consortium policy`);
  return p;
};
const ctx = { institution: "nyu", patient: "MRN-0012345" };
const MIX: { name: string; request: AuthzRequest }[] = [
  {
    name: "ehr-store datakey, own key (allow, grant 1)",
    request: {
      principal: who("nyu-ehr-store"),
      operation: "keys.datakey",
      key: "ehr-nyu-notes",
      purpose: "TREAT",
      context: ctx,
    },
  },
  {
    name: "clinician decrypt, other hospital (allow, grant 3)",
    request: {
      principal: who("dr-wong"),
      operation: "keys.decrypt",
      key: "ehr-nyu-notes",
      purpose: "TREAT",
      context: ctx,
    },
  },
  {
    name: "dc-operator decrypt (deny, all grants scanned)",
    request: {
      principal: who("omar"),
      operation: "keys.decrypt",
      key: "ehr-nyu-notes",
      purpose: "TREAT",
      context: ctx,
    },
  },
  {
    name: "clinician ETREAT decrypt (break-glass)",
    request: {
      principal: who("dr-wong"),
      operation: "keys.decrypt",
      key: "ehr-msk-notes",
      purpose: "ETREAT",
      context: ctx,
    },
  },
];

const ALLOW: Decision = { allow: true, rule: "noop", reason: "noop" };
const noop = { decide: (_r: AuthzRequest): Decision => ALLOW };

let sink = 0;
function nsPerCall(fn: (r: AuthzRequest) => Decision, requests: readonly AuthzRequest[]): number {
  const samples: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      const d = fn(requests[i % requests.length] as AuthzRequest);
      if (d.allow) sink++;
    }
    samples.push(Number(process.hrtime.bigint() - start) / CALLS);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

const rows: [string, number][] = [];
const all = MIX.map((m) => m.request);
rows.push(["no-op authoriser (mix)", nsPerCall(noop.decide, all)]);
rows.push(["role table, RoleAuthorizer (mix)", nsPerCall((r) => roles.decide(r), all)]);
rows.push([
  "policy: resolve token holder + decide (mix)",
  nsPerCall((r) => engine.decide({ ...r, principal: engine.resolve(r.principal) ?? r.principal }), all),
]);
for (const m of MIX) rows.push([`policy decide: ${m.name}`, nsPerCall((r) => engine.decide(r), [m.request])]);

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
const ENVELOPE_US = Number(process.env.BENCH_ENVELOPE_US ?? 309); // datakey at 3,233 req/s (RESULTS.md, 11:32 run)
console.log(
  `| decision | ns/call (median of ${ROUNDS} × ${fmt(CALLS)}) | decisions/s | of a ${ENVELOPE_US} µs envelope request |`,
);
console.log("|---|--:|--:|--:|");
for (const [name, ns] of rows) {
  console.log(
    `| ${name} | ${ns.toFixed(0)} | ${fmt(1e9 / ns)} | ${((ns / 1000 / ENVELOPE_US) * 100).toFixed(2)} % |`,
  );
}
console.log(
  `\nNode ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "?"}; sink ${sink > 0 ? "ok" : "?"}`,
);

/** A fresh, unsealed node on a temporary directory, and a token for `principal`. */
async function node(policy: PolicyEngine | null): Promise<{ node: CustosNode; dir: string; token: string }> {
  const dir = mkdtempSync(join(os.tmpdir(), "custos-bench-policy-"));
  const n = await openNode({ dataDir: dir, log: pino({ level: "silent" }), policy });
  const custodians = ["a1", "b2"].map((id) => ({
    id,
    publicKey: b64u.encode(generateX25519KeyPair().publicKey),
  }));
  const { rootToken } = await n.seal.init(2, custodians);
  const mint = async (principal: string) => {
    const token = `cst_${randomBytes(32).toString("base64url")}`;
    const now = new Date().toISOString();
    await n.store.putToken(
      {
        hash: hashToken(token),
        principal,
        roles: ["admin", "service"],
        createdBy: "bench",
        createdAt: now,
        expiresAt: null,
      },
      { time: now, principal: "bench", operation: "tokens.create", decision: "allow" },
    );
    return token;
  };
  const admin = policy ? await mint("lee") : rootToken;
  const res = await n.app.request("/v1/keys", {
    method: "POST",
    headers: {
      authorization: `Bearer ${admin}`,
      "content-type": "application/json",
      "x-purpose-of-use": "HSYSADMIN",
    },
    body: JSON.stringify({ name: "ehr-nyu-bench" }),
  });
  if (res.status !== 201) throw new Error(`creating the key: ${res.status} ${await res.text()}`);
  return { node: n, dir, token: policy ? await mint("nyu-ehr-store") : rootToken };
}

/** Requests per second of wall time, and CPU µs (user + system, all threads) per request. */
async function reqPerSecond(target: {
  node: CustosNode;
  token: string;
}): Promise<{ rps: number; cpu: number }> {
  const body = JSON.stringify({ purpose: "TREAT", context: { patient: "p1", institution: "nyu" } });
  const headers = { authorization: `Bearer ${target.token}`, "content-type": "application/json" };
  let next = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (next++ < HTTP_REQUESTS) {
      const res = await target.node.app.request("/v1/keys/ehr-nyu-bench/datakey", {
        method: "POST",
        headers,
        body,
      });
      if (res.status !== 200) throw new Error(`datakey: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { rps: HTTP_REQUESTS / wall, cpu: (cpu.user + cpu.system) / HTTP_REQUESTS };
}

const plain = await node(null);
const withPolicy = await node(PolicyEngine.fromFile(CONSORTIUM));
try {
  const a: { rps: number; cpu: number }[] = [];
  const b: { rps: number; cpu: number }[] = [];
  await reqPerSecond(plain);
  await reqPerSecond(withPolicy);
  for (let round = 0; round < HTTP_ROUNDS; round++) {
    // Alternate which goes first, so drift within a round favours neither.
    if (round % 2 === 0) {
      a.push(await reqPerSecond(plain));
      b.push(await reqPerSecond(withPolicy));
    } else {
      b.push(await reqPerSecond(withPolicy));
      a.push(await reqPerSecond(plain));
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
  const rps = (xs: typeof a) => median(xs.map((x) => x.rps));
  const cpu = (xs: typeof a) => median(xs.map((x) => x.cpu));
  const rounds = (xs: typeof a) => xs.map((x) => `${fmt(x.rps)} / ${x.cpu.toFixed(0)}`).join(", ");
  console.log(
    `\n| in-process datakey, 64 in flight, ${HTTP_ROUNDS} alternating rounds × ${fmt(HTTP_REQUESTS)} | req/s (median) | CPU µs/request (median) | rounds (req/s / CPU µs) |`,
  );
  console.log("|---|--:|--:|---|");
  console.log(`| role table (no --policy) | ${fmt(rps(a))} | ${cpu(a).toFixed(0)} | ${rounds(a)} |`);
  console.log(`| consortium policy | ${fmt(rps(b))} | ${cpu(b).toFixed(0)} | ${rounds(b)} |`);
  console.log(
    `\npolicy vs role table: req/s ${((rps(b) / rps(a) - 1) * 100).toFixed(1)} %, CPU per request ${((cpu(b) / cpu(a) - 1) * 100).toFixed(1)} %`,
  );
} finally {
  for (const t of [plain, withPolicy]) {
    await t.node.close();
    rmSync(t.dir, { recursive: true, force: true });
  }
}
