/**
 * `npm run demo`: the seed's scenario, end to end, against a real custos
 * server process that this script starts itself (temporary data directory,
 * free loopback port, policies/examples/consortium.yaml). The root key is
 * split as the policy's custody section says — a custody tree 2 of
 * { 2-of-3 per hospital } — and ceremony steps go through the real CLI
 * (`node bin/custos.js`: init --tree, unseal, status, an approval, the
 * approved destruction, the disclosures report; the custodians' key pairs
 * are made with the function behind `custos keygen`); the rest through fetch, as an EHR system
 * would call custos. Each step says what happens and checks that it
 * happened — an unexpected answer stops the demo with exit 1 — so CI can
 * run it (test/e2e/demo.test.ts). Identities are cst_ tokens the root token
 * mints, before the policy is switched on, for the policy's principals:
 * under the policy a token is its principal's name, and the root token is
 * nobody.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCustodianKey } from "../src/custody/custodian-key.js";
import { DemoServer, expectThat, freePort, ROOT_DIR, cli as run } from "./processes.js";

const POLICY = join(ROOT_DIR, "policies", "examples", "consortium.yaml");
const PATIENT = "MRN-4471-SMITH";
const PASSPHRASE = "consortium demo passphrase";

const HOSPITALS = { weill: "Weill Cornell", nyu: "NYU Langone", msk: "Memorial Sloan Kettering" } as const;
const CUSTODIANS = {
  weill: ["aisha", "ben", "carmen"],
  nyu: ["alice", "bob", "nina"],
  msk: ["maria", "mike", "mei"],
} as const;
const PRINCIPALS = [
  ...["weill", "nyu", "msk"].map((h) => `${h}-ehr-store`),
  ...["dr-wong", "dr-patel", "dr-rossi", "omar", "kim", "lee", "jo", "pat", "audrey"],
];

const dir = mkdtempSync(join(tmpdir(), "custos-demo-"));
const data = join(dir, "data");
const cli = (args: string[], env: Record<string, string> = {}) => run(dir, args, env);
const server = new DemoServer(data, await freePort());
let step = 0;

const say = (line = "") => process.stdout.write(`${line}\n`);
const section = (title: string) => say(`\n== ${++step}. ${title} ==`);

interface Reply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; rule?: string; message: string } };
}

export async function main(): Promise<void> {
  const started = Date.now();
  const addr = server.url;
  const tokens = new Map<string, string>();
  const api = async (who: string, method: string, path: string, body?: unknown, purpose?: string) => {
    const headers: Record<string, string> = { authorization: `Bearer ${tokens.get(who) ?? who}` };
    if (purpose) headers["x-purpose-of-use"] = purpose;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(addr + path, {
      method,
      headers,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Reply["body"] } satisfies Reply;
  };
  const refusal = (r: Reply) =>
    `${r.status} ${r.body.error?.code}${r.body.error?.rule ? `, rule ${r.body.error.rule}` : ""}`;
  const record = (institution: string) => ({ institution, patient: PATIENT });
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

  say("custos consortium demo: three hospitals, one patient, every access decided by policy and audited");
  say(`policy ${POLICY}`);
  say(`data   ${data} (temporary)`);

  section("Custody ceremony across the three hospitals");
  const custodians = Object.values(CUSTODIANS).flat();
  writeFileSync(join(dir, "pass"), PASSPHRASE);
  // What `custos keygen --out NAME` does on each custodian's machine (in this process: nine CLI starts would
  // cost more than the rest of the demo), in the same file format.
  for (const c of custodians) {
    const { publicFile, privateFile } = await generateCustodianKey(c, PASSPHRASE);
    writeFileSync(join(dir, `${c}.key`), `${JSON.stringify(privateFile, null, 2)}\n`, { mode: 0o600 });
    writeFileSync(join(dir, `${c}.pub`), `${JSON.stringify(publicFile, null, 2)}\n`);
  }
  say(`each of the nine custodians made a key pair on their own machine: ${custodians.join(", ")}`);
  await server.start([]);
  const env = { CUSTOS_ADDR: addr };
  // The consortium policy's custody: 2 of { 2-of-3 Weill, 2-of-3 NYU, 2-of-3 MSK }, as a custody tree.
  const gates = Object.entries(CUSTODIANS).map(
    ([h, cs]) =>
      `  - name: ${h}\n    threshold: 2\n    of: [${cs.map((c) => `{ custodian: ${c} }`).join(", ")}]`,
  );
  writeFileSync(join(dir, "tree.yaml"), `threshold: 2\nof:\n${gates.join("\n")}\n`);
  await cli(
    ["operator", "init", "--tree", "tree.yaml", "--out-dir", "shares", "--root-token-file", "root.token"],
    env,
  );
  const root = readFileSync(join(dir, "root.token"), "utf8").trim();
  expectThat(readdirSync(join(dir, "shares")).length === 9, "nine share files");
  say("custos operator init --tree: the root key split as 2 of { 2-of-3 Weill, 2-of-3 NYU, 2-of-3 MSK }");
  for (const who of PRINCIPALS) {
    const r = await api(root, "POST", "/v1/tokens", { principal: who, roles: ["service"] });
    expectThat(r.status === 201, `token for ${who}: ${refusal(r)}`);
    tokens.set(who, r.body.token as string);
  }
  say(`the root token minted a cst_ token for each policy principal: ${PRINCIPALS.join(", ")}`);
  await server.stop();

  await server.start(["--policy", POLICY]);
  say("the node restarts under policies/examples/consortium.yaml: sealed, and the root token is nobody now");
  const unseal = (c: string) =>
    cli(
      [
        "operator",
        "unseal",
        "--share",
        join("shares", `${c}.share`),
        "--identity",
        `${c}.key`,
        "--passphrase-file",
        "pass",
      ],
      env,
    );
  const sealed = async () =>
    ((await (await fetch(`${addr}/v1/sys/seal-status`)).json()) as { sealed: boolean }).sealed;
  await Promise.all(["aisha", "ben"].map(unseal));
  expectThat(await sealed(), "one hospital's shares must not unseal");
  say(
    "Weill Cornell's Aisha and Ben submit their shares: still SEALED: one hospital alone cannot (custos status):",
  );
  say((await cli(["status"], env)).replace(/^/gm, "  ").trimEnd());
  await Promise.all(["alice", "bob"].map(unseal));
  expectThat(!(await sealed()), "two hospitals' gates unseal");
  say("NYU Langone's Alice and Bob submit theirs: UNSEALED by custodians of two hospitals");
  const rootNow = await api(root, "GET", "/v1/keys", undefined, "HSYSADMIN");
  expectThat(rootNow.status === 403, "root token refused under the policy");
  say(`the root token under the policy: refused (${refusal(rootNow)})`);

  section("Record keys per hospital, each made by its own key administrator");
  for (const [admin, hospital] of [
    ["kim", "weill"],
    ["lee", "nyu"],
    ["jo", "msk"],
  ] as const) {
    const r = await api(admin, "POST", "/v1/keys", { name: `ehr-${hospital}-records` }, "HSYSADMIN");
    expectThat(r.status === 201, `create ehr-${hospital}-records: ${refusal(r)}`);
    say(`${admin} (${HOSPITALS[hospital]}) created ehr-${hospital}-records`);
  }
  const legacy = await api("kim", "POST", "/v1/keys", { name: "ehr-weill-legacy" }, "HSYSADMIN");
  expectThat(legacy.status === 201, "create ehr-weill-legacy");
  const foreign = await api("kim", "POST", "/v1/keys", { name: "ehr-nyu-kims" }, "HSYSADMIN");
  expectThat(foreign.status === 403, "kim may not create NYU keys");
  say(`kim tries to create a key in NYU's namespace: refused (${refusal(foreign)})`);

  const store = async (hospital: string, text: string) => {
    const r = await api(`${hospital}-ehr-store`, "POST", `/v1/keys/ehr-${hospital}-records/encrypt`, {
      purpose: "TREAT",
      context: record(hospital),
      plaintext: b64(text),
    });
    expectThat(r.status === 200, `${hospital} stores a record: ${refusal(r)}`);
    return r.body.ciphertext as string;
  };
  const read = (who: string, hospital: string, ciphertext: string, purpose: string) =>
    api(who, "POST", `/v1/keys/ehr-${hospital}-records/decrypt`, {
      purpose,
      context: record(hospital),
      ciphertext,
    });
  const text = (r: Reply) => Buffer.from(r.body.plaintext as string, "base64").toString("utf8");

  section(`Mrs. Smith (${PATIENT}) is admitted at Weill Cornell`);
  const admission = await store("weill", "Admission: chest pain, troponin raised; cardiology consult");
  say(
    `weill-ehr-store encrypted the admission note under ehr-weill-records (institution=weill, purpose TREAT)`,
  );
  const own = await read("dr-wong", "weill", admission, "TREAT");
  expectThat(own.status === 200, `dr-wong reads her own hospital's record: ${refusal(own)}`);
  say(`Dr. Wong (Weill) reads it for TREAT: allowed — "${text(own)}"`);

  section("Surgery at NYU Langone");
  const preop = await read("dr-patel", "weill", admission, "TREAT");
  expectThat(preop.status === 200, `cross-hospital TREAT: ${refusal(preop)}`);
  say(
    "Dr. Patel (NYU) reads Weill's admission note for TREAT: allowed across hospitals (grant clinicians-consortium-treatment)",
  );
  const surgery = await store("nyu", "Surgery: CABG x3, uneventful; discharge on aspirin and statin");
  say("nyu-ehr-store encrypted the operative report under ehr-nyu-records");
  const billing = await read("dr-patel", "weill", admission, "HPAYMT");
  expectThat(billing.status === 403, "payment is not a purpose granted across hospitals");
  say(`Dr. Patel asks for the same record for HPAYMT (billing): REFUSED (${refusal(billing)})`);

  section("Follow-up at Memorial Sloan Kettering");
  const followRead = await read("dr-rossi", "nyu", surgery, "TREAT");
  expectThat(followRead.status === 200, `dr-rossi TREAT: ${refusal(followRead)}`);
  say(`Dr. Rossi (MSK) reads NYU's operative report for TREAT: allowed — "${text(followRead)}"`);
  const research = await read("dr-rossi", "nyu", surgery, "HRESCH");
  expectThat(research.status === 403, "research is not granted");
  say(`Dr. Rossi asks for it for HRESCH (research): REFUSED (${refusal(research)})`);
  const followUp = await store("msk", "Follow-up: wound healed, echo EF 55%, cardiac rehab referred");
  say("msk-ehr-store encrypted the follow-up note under ehr-msk-records");

  section("A data-centre operator tries to read the record");
  const operator = await read("omar", "nyu", surgery, "TREAT");
  expectThat(operator.status === 403, "dc-operator refused");
  say(`Omar (NYU data-centre operator) asks to decrypt the operative report: REFUSED (${refusal(operator)})`);

  section("Break-glass: an emergency readmission at Weill Cornell");
  const glass = await read("dr-wong", "msk", followUp, "ETREAT");
  expectThat(glass.status === 200, `break-glass decrypt: ${refusal(glass)}`);
  say(
    "Dr. Wong reads MSK's follow-up note for ETREAT (no grant covers it): allowed by BREAK-GLASS, flagged in the audit",
  );
  const open = await api("pat", "GET", "/v1/reviews?open=true", undefined, "HCOMPL");
  const reviews = open.body.reviews as { id: string; principal: string; key: string; dueAt: string }[];
  const review = reviews.find((r) => r.principal === "dr-wong");
  expectThat(review !== undefined, "a review was opened");
  say(`a review was opened for Dr. Wong's use of ${review?.key}, due ${review?.dueAt}`);
  const selfClose = await api(
    "dr-wong",
    "POST",
    `/v1/reviews/${review?.id}/close`,
    { note: "it was fine" },
    "HCOMPL",
  );
  expectThat(selfClose.status === 403, "the user cannot close her own review");
  say(`Dr. Wong tries to close her own review: REFUSED (${refusal(selfClose)})`);
  const closed = await api(
    "pat",
    "POST",
    `/v1/reviews/${review?.id}/close`,
    { note: "emergency readmission confirmed in the ED log; justified" },
    "HCOMPL",
  );
  expectThat(closed.status === 200, `pat closes the review: ${refusal(closed)}`);
  say("Pat (Weill privacy officer) reviewed it and closed it: justified");

  section("Destroying a retired key needs two approvals from two other hospitals");
  const direct = await api("kim", "DELETE", "/v1/keys/ehr-weill-legacy", undefined, "HSYSADMIN");
  expectThat(direct.status === 403 && direct.body.error?.code === "approval_required", "approval required");
  say(`kim deletes ehr-weill-legacy directly: REFUSED (${refusal(direct)})`);
  const asked = await api("kim", "POST", "/v1/approvals", {
    operation: "destroy",
    key: "ehr-weill-legacy",
    reason: "legacy system retired; records migrated",
  });
  expectThat(asked.status === 201, `request approval: ${refusal(asked)}`);
  const id = asked.body.id as string;
  say(
    `kim requested approval ${id} (parameters bound by sha256:${String(asked.body.paramsHash).slice(0, 16)}…)`,
  );
  // A vote names the approval and the digest of the parameters the voter read.
  const seen = { id, digest: asked.body.paramsHash as string };
  const self = await api("kim", "POST", `/v1/approvals/${id}/approve`, seen);
  expectThat(self.status === 403, "self-approval refused");
  say(`kim approves her own request: REFUSED (${refusal(self)})`);
  const sameOrg = await api("pat", "POST", `/v1/approvals/${id}/approve`, seen);
  expectThat(sameOrg.status === 403, "pat is not eligible");
  say(`Pat (Weill, privacy officer) approves: REFUSED (${refusal(sameOrg)})`);
  const lee = await api("lee", "POST", `/v1/approvals/${id}/approve`, {
    ...seen,
    note: "checked by NYU Langone",
  });
  expectThat(lee.status === 200, `lee approves: ${refusal(lee)}`);
  say(`lee (NYU Langone) approves: ${lee.body.counted} of ${lee.body.required}, status ${lee.body.status}`);
  const lou = await cli(["approvals", "approve", id, "--note", "checked by Memorial Sloan Kettering"], {
    ...env,
    CUSTOS_TOKEN: tokens.get("jo") as string,
  });
  expectThat(/Status: +approved/.test(lou), "jo's approval completes it");
  say("jo (Memorial Sloan Kettering) approves with the CLI (custos approvals approve):");
  say(lou.replace(/^/gm, "  ").trimEnd());
  const executed = await cli(["keys", "destroy", "ehr-weill-legacy"], {
    ...env,
    CUSTOS_TOKEN: tokens.get("kim") as string,
    CUSTOS_PURPOSE: "HSYSADMIN",
    CUSTOS_APPROVAL_ID: id,
  });
  expectThat(/State: +pending-destruction/.test(executed), "the approved destruction ran");
  say("kim runs the approved request (CUSTOS_APPROVAL_ID=… custos keys destroy ehr-weill-legacy):");
  say(executed.replace(/^/gm, "  ").trimEnd());
  const again = await api("kim", "POST", `/v1/approvals/${id}/execute`, seen);
  expectThat(again.status === 409, "an approval runs once");
  say(`kim executes it a second time: REFUSED (${refusal(again)})`);

  section(
    `Who accessed Mrs. Smith's records, and why (custos audit report disclosures --patient ${PATIENT})`,
  );
  const report = await cli(["audit", "report", "disclosures", "--patient", PATIENT], {
    ...env,
    CUSTOS_TOKEN: tokens.get("audrey") as string,
    CUSTOS_PURPOSE: "HCOMPL",
  });
  say(report.trimEnd());
  for (const who of [
    "dr-wong",
    "dr-patel",
    "dr-rossi",
    "weill-ehr-store",
    "nyu-ehr-store",
    "msk-ehr-store",
  ]) {
    expectThat(report.includes(who), `the report names ${who}`);
  }
  expectThat(/ETREAT/.test(report), "the report shows the break-glass purpose");
  const denied = await api(
    "audrey",
    "GET",
    "/v1/audit/events?decision=deny&operation=keys.decrypt",
    undefined,
    "HCOMPL",
  );
  expectThat(denied.status === 200, `audit events: ${refusal(denied)}`);
  const refused = (
    denied.body.events as { event: { principal: string; key?: string; purpose?: string; rule?: string } }[]
  )
    .map((e) => e.event)
    .filter((e) => e.key?.startsWith("ehr-"));
  say("\nrefused attempts on the record keys (custos audit events --decision deny):");
  for (const e of refused)
    say(`  ${e.principal.padEnd(9)} ${String(e.key).padEnd(17)} ${String(e.purpose).padEnd(7)} ${e.rule}`);
  for (const who of ["omar", "dr-patel", "dr-rossi"]) {
    expectThat(
      refused.some((e) => e.principal === who),
      `the audit log has ${who}'s refused attempt`,
    );
  }
  say(
    `\nDEMO OK in ${((Date.now() - started) / 1000).toFixed(1)} s: every access above was decided by the consortium policy and is in the audit log`,
  );
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  say(`\nDEMO FAILED: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
