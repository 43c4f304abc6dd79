/**
 * Offline verification of an exported audit log (`custos audit export`,
 * `custos audit verify --export`), and tampering with the export: an altered
 * event, a deleted one, two swapped, a truncated log and a head re-signed
 * with another key are each refused, with the first bad event or the head
 * problem named.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ListeningNode, listen, openNode } from "../../src/api/server.js";
import { auditPublicKey, signTreeHead, treeHeadFromJson, treeHeadToJson } from "../../src/audit/tree-head.js";
import { b64u } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";
import { runCli } from "./harness.js";

interface Verdict {
  ok: boolean;
  firstBadSeq?: number;
  problem?: string;
  signedHead: { ok: boolean; problem?: string; keyId?: string } | null;
}

describe("audit export and offline verification", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-export-"));
  let node: ListeningNode;
  let env: Record<string, string>;
  let lines: string[];
  let auditKey: string;

  const verify = async (content: string[], pin = true) => {
    const file = join(dir, `t-${Math.random().toString(36).slice(2)}.jsonl`);
    writeFileSync(file, `${content.join("\n")}\n`);
    const r = await runCli(
      ["audit", "verify", "--export", file, "--format", "json", ...(pin ? ["--audit-key", auditKey] : [])],
      env,
    );
    return { code: r.code, verdict: JSON.parse(r.stdout) as Verdict };
  };

  beforeAll(async () => {
    node = await listen(
      await openNode({ dataDir: join(dir, "data"), log: pino({ level: "silent" }) }),
      "127.0.0.1",
      0,
    );
    const custodians = ["a1", "b2"].map((id) => ({
      id,
      publicKey: b64u.encode(generateX25519KeyPair().publicKey),
    }));
    const { rootToken } = await node.seal.init(2, custodians);
    env = { CUSTOS_ADDR: node.url, CUSTOS_TOKEN: rootToken };
    for (let i = 0; i < 6; i++) await runCli(["keys", "create", `k${i}`], env);
    await node.merkle.signPending();
    const out = join(dir, "log.jsonl");
    expect((await runCli(["audit", "export", "--out", out], env)).code).toBe(0);
    lines = readFileSync(out, "utf8").trim().split("\n");
    auditKey = b64u.encode(node.merkle.publicKey!);
  }, 120_000);

  afterAll(async () => {
    await node?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("verifies the export as written", async () => {
    const { code, verdict } = await verify(lines);
    expect(code).toBe(0);
    expect(verdict.ok).toBe(true);
    expect(verdict.signedHead).toMatchObject({ ok: true, keyId: auditKey });
  });

  it("names an altered event", async () => {
    const altered = lines.map((l, i) => (i === 4 ? l.replace("keys.create", "keys.rotate") : l));
    expect(altered).not.toEqual(lines);
    const { code, verdict } = await verify(altered);
    expect(code).toBe(1);
    expect(verdict).toMatchObject({ ok: false, firstBadSeq: 4, kind: "altered" });
  });

  it("names a deleted event and swapped events", async () => {
    const deleted = lines.filter((_, i) => i !== 3);
    expect((await verify(deleted)).verdict).toMatchObject({ ok: false, firstBadSeq: 3, kind: "deleted" });
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
    expect((await verify(swapped)).verdict).toMatchObject({
      ok: false,
      firstBadSeq: 2,
      kind: "reordered",
    });
  });

  it("catches a log truncated below its signed head", async () => {
    const { verdict } = await verify(lines.slice(0, 4));
    expect(verdict.ok).toBe(true); // the chain that is left is intact...
    expect(verdict.signedHead).toMatchObject({ ok: false, problem: "truncated_log" }); // ...but the head covers more
  });

  it("refuses a head re-signed with another key when the audit key is pinned", async () => {
    const header = JSON.parse(lines[0]!) as { head: Parameters<typeof treeHeadFromJson>[0] };
    const { head } = treeHeadFromJson(header.head);
    const other = Secret.of(ed25519.utils.randomSecretKey());
    const forged = treeHeadToJson(
      signTreeHead(other, head.size, head.timestamp, head.root),
      auditPublicKey(other),
    );
    const relined = [JSON.stringify({ ...header, head: forged }), ...lines.slice(1)];
    expect((await verify(relined)).verdict.signedHead).toMatchObject({ ok: false, problem: "wrong_key" });
    expect((await verify(relined, false)).verdict.signedHead).toMatchObject({ ok: true }); // why the key must be pinned
  });
});
