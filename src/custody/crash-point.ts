/**
 * Test-only crash points for the custody-change crash tests
 * (test/e2e/rekey-crash.test.ts, test/chaos/rekey-chaos.ts). When the
 * environment variable `CUSTOS_TEST_CRASH_AT` names a step, the server kills
 * itself with SIGKILL the moment it reaches that step — no handlers run, no
 * buffers flush, exactly as `kill -9` or a power cut would leave it. Off
 * unless the variable is set; a production node never sets it. It is read at
 * each call, not at import, so a test harness can set it per process.
 */

/** The named steps of a custody change, in order (docs/FORMATS.md §5.9). */
export const CRASH_STEPS = [
  "change.started",
  "change.quorum",
  "change.shares-stored",
  "change.confirmed",
  "switch.resealed",
  "switch.committed",
  "switch.adopted",
] as const;
export type CrashStep = (typeof CRASH_STEPS)[number];

export function crashPoint(step: CrashStep): void {
  if (process.env.CUSTOS_TEST_CRASH_AT === step) process.kill(process.pid, "SIGKILL");
}
