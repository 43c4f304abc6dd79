/**
 * The documented exit codes and "what to do next" messages of the custos
 * command, for the failures that happen before or without a server: bad
 * usage, files that exist, an unreachable server, a missing token.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../e2e/harness.js";

describe("custos exit codes", () => {
  let dir: string;
  // A loopback port nothing listens on (port 1 needs root to bind and is unused here).
  const nowhere = { CUSTOS_ADDR: "http://127.0.0.1:1", CUSTOS_TOKEN: "cst_x" };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "custos-cli-"));
    writeFileSync(join(dir, "pass"), "passphrase\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("2 for an unknown command, with a hint", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("custos --help");
  });

  it("3 when the server cannot be reached, naming CUSTOS_ADDR", async () => {
    const r = await runCli(["status"], nowhere);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("CUSTOS_ADDR");
  });

  it("2 when no token is set for a command that needs one", async () => {
    const r = await runCli(["keys", "list"], { CUSTOS_ADDR: nowhere.CUSTOS_ADDR, CUSTOS_TOKEN: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("CUSTOS_TOKEN");
  });

  it("2 when keygen would overwrite a key, writing nothing", async () => {
    const out = join(dir, "alice");
    writeFileSync(`${out}.pub`, "{}");
    const r = await runCli(["keygen", "--out", out, "--passphrase-file", join(dir, "pass")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("already exists");
  });

  it("2 when keygen has no passphrase and no terminal", async () => {
    const r = await runCli(["keygen", "--out", join(dir, "bob")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--passphrase-file");
  });

  it("2 when init is given fewer custodian files than shares, before contacting the server", async () => {
    const r = await runCli(
      ["operator", "init", "--shares", "3", "--threshold", "2", "--custodian", "a.pub", "--out-dir", dir],
      nowhere,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--shares is 3");
  });

  it("2 for a data command with a malformed --context", async () => {
    const r = await runCli(["datakey", "k", "--context", "novalue", "--purpose", "TREAT"], nowhere);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("key=value");
  });
});
