/**
 * Chaos runs of rekey and root rotation, beyond the crash tests of the
 * default suite (test/e2e/rekey-crash.test.ts): many more kills of the real
 * server process, half at a random named crash point (CUSTOS_TEST_CRASH_AT),
 * half after a random delay in [0, the change's measured duration], each
 * checked after a restart as crash-run.ts says (exactly one custody works,
 * the other's shares refused, every data key decrypts, the audit names the
 * active custody). Not part of `npm test`:
 *
 *   npx tsx test/chaos/rekey-chaos.ts [--runs 200] [--concurrency 3]
 *
 * Exits 1 if any run violates a property, printing the run and the reason.
 */
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { CRASH_STEPS } from "../../src/custody/crash-point.js";
import { crashRun, type Kind, makeTemplate, type RunOptions } from "./crash-run.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "200" }, concurrency: { type: "string", default: "3" } },
});
const runs = Number(values.runs);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write("usage: rekey-chaos.ts [--runs N] [--concurrency C] (positive integers)\n");
  process.exit(2);
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
const KINDS: Kind[] = ["rekey", "rotate-root"];

const template = await makeTemplate();
const durations = new Map<Kind, number>();
for (const kind of KINDS) durations.set(kind, (await crashRun(template, { kind })).changeMs);
process.stderr.write(`uninterrupted change: ${KINDS.map((k) => `${k} ${durations.get(k)} ms`).join(", ")}\n`);

const tally = { old: 0, new: 0, failed: 0 };
let next = 0;
const started = Date.now();
async function worker(): Promise<void> {
  while (next < runs) {
    const n = ++next;
    const kind = pick(KINDS);
    const opts: RunOptions =
      n % 2 === 0
        ? { kind, step: pick(CRASH_STEPS) }
        : { kind, killAfterMs: Math.floor(Math.random() * (durations.get(kind) ?? 1000)) };
    const label = `#${n} ${kind} ${opts.step ? `at ${opts.step}` : `after ${opts.killAfterMs} ms`}`;
    try {
      const r = await crashRun(template, opts);
      tally[r.active]++;
      process.stderr.write(`${label}: ${r.active} custody (reached ${r.reached}); ${r.checks.join(", ")}\n`);
    } catch (err) {
      tally.failed++;
      process.stderr.write(`${label}: FAILED ${(err as Error).stack ?? err}\n`);
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
rmSync(template.dir, { recursive: true, force: true });
process.stdout.write(
  `${runs} runs in ${Math.round((Date.now() - started) / 1000)} s: ${tally.old} old custody, ${tally.new} new, ${tally.failed} failed\n`,
);
process.exit(tally.failed ? 1 : 0);
