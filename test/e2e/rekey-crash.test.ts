/**
 * Crash tests of rekey and root rotation (issue 6): the real server process
 * is killed with SIGKILL during the change — at every named step of
 * src/custody/crash-point.ts (CUSTOS_TEST_CRASH_AT, test-only) three times
 * for each kind, and after random delays in [0, the change's duration] —
 * then restarted on its data directory and checked (test/chaos/crash-run.ts):
 * exactly one custody works, its shares unseal and the other's are refused,
 * every data key wrapped before still decrypts, and the audit names the
 * active custody. A crash before the switch transaction leaves the old
 * custody; at or after it, the new one. More runs: test/chaos/rekey-chaos.ts.
 */
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CRASH_STEPS } from "../../src/custody/crash-point.js";
import { crashRun, type Kind, makeTemplate, type RunResult, type Template } from "../chaos/crash-run.js";

const KINDS: Kind[] = ["rekey", "rotate-root"];
const REPEATS = 3;
const RANDOM_RUNS = 5;
/** Steps after which the switch is durable: a crash there must leave the new custody. */
const AFTER_SWITCH = new Set(["switch.committed", "switch.adopted"]);

let template: Template;
const durations = new Map<Kind, number>();
const results: { label: string; result: RunResult }[] = [];

// Each run starts a server process; a few at a time on a shared machine.
let running = 0;
const waiting: (() => void)[] = [];
async function limited<T>(task: () => Promise<T>): Promise<T> {
  if (running >= 3) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await task();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

beforeAll(async () => {
  template = await makeTemplate();
  for (const kind of KINDS) {
    const r = await crashRun(template, { kind });
    expect(r.active).toBe("new");
    durations.set(kind, r.changeMs);
    results.push({ label: `${kind} uninterrupted`, result: r });
  }
}, 180_000);

afterAll(() => {
  if (template) rmSync(template.dir, { recursive: true, force: true });
  const old = results.filter((r) => r.result.active === "old").length;
  process.stderr.write(
    `rekey crash runs: ${results.length} (${old} left the old custody, ${results.length - old} the new)\n`,
  );
});

describe.concurrent("kill -9 at each named step", () => {
  for (const kind of KINDS) {
    for (const step of CRASH_STEPS) {
      for (let i = 1; i <= REPEATS; i++) {
        it(`${kind}, crash at ${step} (#${i})`, { timeout: 180_000 }, async () => {
          const result = await limited(() => crashRun(template, { kind, step }));
          results.push({ label: `${kind} ${step}`, result });
          expect(result.crashedAtStep, `the server did not reach ${step} (got to ${result.reached})`).toBe(
            true,
          );
          expect(result.active).toBe(AFTER_SWITCH.has(step) ? "new" : "old");
          expect(result.checks).toContain("every data key decrypts");
          expect(result.checks).toContain("audit names the active custody");
          if (!["none", "started"].includes(result.reached))
            expect(result.checks).toContain("other custody's share refused");
        });
      }
    }
  }
});

describe.concurrent("kill -9 after a random delay", () => {
  for (const kind of KINDS) {
    for (let i = 1; i <= RANDOM_RUNS; i++) {
      it(`${kind}, random kill #${i}`, { timeout: 180_000 }, async () => {
        const killAfterMs = Math.floor(Math.random() * (durations.get(kind) ?? 1000));
        const result = await limited(() => crashRun(template, { kind, killAfterMs }));
        results.push({ label: `${kind} after ${killAfterMs} ms`, result });
        expect(["old", "new"]).toContain(result.active);
        expect(result.checks).toContain("every data key decrypts");
        expect(result.checks).toContain("audit names the active custody");
      });
    }
  }
});
