/**
 * `npm run demo` keeps working: the consortium demo (demo/consortium.ts)
 * runs as its own process — it starts a real server with the consortium
 * policy, plays the scenario and checks each step itself — and this test
 * checks that it exits 0 and prints the lines that carry the story: a
 * custody tree whose quorum needs two hospitals, treatment across hospitals allowed, a purpose
 * not granted and a data-centre operator refused, break-glass flagged and
 * reviewed, a destruction approved by two other hospitals, and the
 * disclosures report for the patient.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

it("plays the consortium scenario end to end against a real server", async () => {
  const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "demo/consortium.ts"],
      { cwd: ROOT, timeout: 170_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
  expect(code, out).toBe(0);
  for (const line of [
    /still SEALED: one hospital alone cannot/,
    /root\/1 \(weill\): 2 of 3, 2 present, satisfied/,
    /UNSEALED by custodians of two hospitals/,
    /Dr\. Patel \(NYU\) reads Weill's admission note for TREAT: allowed across hospitals/,
    /for HPAYMT \(billing\): REFUSED \(403 forbidden, rule default-deny\)/,
    /Omar \(NYU data-centre operator\) .*: REFUSED/,
    /allowed by BREAK-GLASS, flagged in the audit/,
    /Pat \(Weill privacy officer\) reviewed it and closed it/,
    /kim approves her own request: REFUSED \(403 self_approval/,
    /Status: +approved/,
    /Approved: +jo \(msk, token\)/,
    /State: +pending-destruction/,
    /kim executes it a second time: REFUSED \(409 not_pending/,
    /dr-rossi\s.*ehr-nyu-records.*\sTREAT\s+allow/,
    /dr-wong\s.*ehr-msk-records.*\sETREAT\s+allow/,
    /DEMO OK in [\d.]+ s/,
  ]) {
    expect(out).toMatch(line);
  }
}, 180_000);
