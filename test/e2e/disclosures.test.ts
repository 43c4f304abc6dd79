/**
 * An auditor finds every use of one patient's records through the CLI,
 * though the log holds only keyed HMACs of the patient's identifier; the
 * context values configured clear (institution, department) are in the
 * events and the reports, and no identifier is anywhere in the database
 * files (main file and WAL, searched byte for byte).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ListeningNode, listen, openNode } from "../../src/api/server.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { runCli } from "./harness.js";

describe("accounting of disclosures", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-disclosures-"));
  let node: ListeningNode;
  let root: string;

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${node.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  };

  beforeAll(async () => {
    node = await listen(await openNode({ dataDir: dir, log: pino({ level: "silent" }) }), "127.0.0.1", 0);
    const custodians = ["a1", "b2"].map((id) => ({
      id,
      publicKey: b64u.encode(generateX25519KeyPair().publicKey),
    }));
    root = (await node.seal.init(2, custodians)).rootToken;
    await post("/v1/keys", { name: "ehr-notes" });
    const mine = await post("/v1/keys/ehr-notes/datakey", {
      purpose: "TREAT",
      context: { patient: "MRN-0001" },
    });
    await post("/v1/keys/ehr-notes/datakey", { purpose: "HPAYMT", context: { patient: "MRN-0002" } });
    await post("/v1/keys/ehr-notes/decrypt", {
      purpose: "ETREAT",
      context: { mrn: "MRN-0001" },
      ciphertext: mine.ciphertext,
    });
    await post("/v1/keys/ehr-notes/decrypt", {
      purpose: "TREAT",
      context: { patient: "MRN-0009" },
      ciphertext: mine.ciphertext,
    });
    // `dob` is configured nowhere: HMAC'd like an identifier, never clear.
    await post("/v1/keys/ehr-notes/datakey", {
      purpose: "TREAT",
      context: {
        patient: "MRN-0003",
        institution: "nyu-langone",
        department: "cardiology",
        dob: "1970-01-01",
      },
    });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists that patient's accesses, under any identifying key, and no one else's", async () => {
    const r = await runCli(["audit", "report", "disclosures", "--patient", "MRN-0001", "--format", "json"], {
      CUSTOS_ADDR: node.url,
      CUSTOS_TOKEN: root,
    });
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { operation: string; purpose: string; decision: string }[];
    expect(rows.map((x) => [x.operation, x.purpose, x.decision])).toEqual([
      ["keys.datakey", "TREAT", "allow"],
      // Found through the `mrn` key; refused, since the blob was bound to {patient}: attempts count too.
      ["keys.decrypt", "ETREAT", "deny"],
    ]);
    const csv = await runCli(["audit", "report", "disclosures", "--patient", "MRN-0002", "--format", "csv"], {
      CUSTOS_ADDR: node.url,
      CUSTOS_TOKEN: root,
    });
    expect(csv.stdout.trim().split("\r\n")).toHaveLength(2);
    expect(csv.stdout).toContain("HPAYMT");
  });

  it("reports everything one principal did", async () => {
    const r = await runCli(["audit", "report", "principal", "root", "--format", "json"], {
      CUSTOS_ADDR: node.url,
      CUSTOS_TOKEN: root,
    });
    expect(r.code).toBe(0);
    const ops = (JSON.parse(r.stdout) as { operation: string }[]).map((x) => x.operation);
    expect(ops).toEqual(expect.arrayContaining(["keys.create", "keys.datakey", "keys.decrypt"]));
    expect(new Set(ops).has("sys.init")).toBe(false); // init was anonymous, not root's
  });

  it("keeps the clear context in the event and the report, and finds it by patient", async () => {
    const env = { CUSTOS_ADDR: node.url, CUSTOS_TOKEN: root };
    const events = await runCli(["audit", "events", "--patient", "MRN-0003", "--format", "json"], env);
    expect(events.code).toBe(0);
    const [event, ...rest] = JSON.parse(events.stdout) as {
      context: Record<string, string>;
      clearContext: Record<string, string>;
    }[];
    expect(rest).toEqual([]);
    expect(event!.clearContext).toEqual({ institution: "nyu-langone", department: "cardiology" });
    expect(Object.keys(event!.context).sort()).toEqual(["dob", "patient"]);
    const r = await runCli(
      ["audit", "report", "disclosures", "--patient", "MRN-0003", "--format", "json"],
      env,
    );
    expect((JSON.parse(r.stdout) as { context: string }[]).map((x) => x.context)).toEqual([
      "department=cardiology; institution=nyu-langone",
    ]);
  });

  it("keeps the identifiers out of the log", () => {
    const files = ["custos.db", "custos.db-wal"].map((f) => join(dir, f)).filter((f) => existsSync(f));
    const raw = Buffer.concat(files.map((f) => readFileSync(f)));
    expect(raw.includes(Buffer.from("nyu-langone"))).toBe(true);
    for (const secret of ["MRN-000", "1970-01-01"])
      expect(raw.includes(Buffer.from(secret)), secret).toBe(false);
  });
});
