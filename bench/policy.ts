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
 *   npx tsx bench/policy.ts            (BENCH_ROUNDS, BENCH_CALLS to change the run)
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { type AuthzRequest, type Decision, RoleAuthorizer } from "../src/policy/authorizer.js";
import { PolicyEngine } from "../src/policy/engine.js";

const CONSORTIUM = fileURLToPath(new URL("../policies/examples/consortium.yaml", import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
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
