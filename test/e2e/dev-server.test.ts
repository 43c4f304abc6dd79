/**
 * The README's first command: `custos server --dev` comes up initialised and
 * unsealed with a usable root token, says loudly it is not for production,
 * and with a kept --data-dir unseals itself again on the next start.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { skipSwtpm } from "../helpers/swtpm.js";
import { runCli, type ServerProcess, startServer } from "./harness.js";

describe("development server", () => {
  const dir = mkdtempSync(join(tmpdir(), "custos-dev-e2e-"));
  let server: ServerProcess | undefined;

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts initialised and unsealed, and unseals itself again after a restart", async () => {
    const args = ["--dev", "--data-dir", join(dir, "data"), "--dev-root-token", "dev-root-token-for-tests"];
    server = await startServer(args);
    expect(server.output()).toContain("NOT FOR PRODUCTION");
    for (const f of ["data", "data/custos.db", "data/dev/dev-alice.key"]) {
      expect(statSync(join(dir, f)).mode & 0o077).toBe(0); // owner-only
    }
    const env = { CUSTOS_ADDR: server.url, CUSTOS_TOKEN: "dev-root-token-for-tests" };
    const printed = /CUSTOS_TOKEN='(cst_[A-Za-z0-9_-]+)'/.exec(server.output());
    expect(printed).toBeNull(); // the dev root token given replaces the printed one
    expect((await runCli(["keys", "create", "dev-key"], env)).code).toBe(0);
    const dk = await runCli(["datakey", "dev-key", "--purpose", "TREAT", "--format", "json"], env);
    expect(dk.code).toBe(0);
    const { ciphertext } = JSON.parse(dk.stdout) as { ciphertext: string };

    await server.stop();
    server = await startServer(args);
    const env2 = { ...env, CUSTOS_ADDR: server.url };
    const status = JSON.parse((await runCli(["status", "--format", "json"], env2)).stdout) as {
      sealed: boolean;
      protection: string;
    };
    expect(status.sealed).toBe(false);
    // With swtpm installed (always under CI) the dev server starts one and holds its keys there.
    expect(status.protection).toBe(skipSwtpm ? "software" : "tpm");
    const dec = await runCli(["decrypt", "dev-key", "--purpose", "TREAT", "--ciphertext", ciphertext], env2);
    expect(dec.code).toBe(0);
    await server.stop();
    server = undefined;
    // The dev server stops the swtpm it started.
    expect(existsSync(join(dir, "data", "swtpm", "swtpm.pid"))).toBe(false);
  }, 120_000);

  it("prints a fresh root token when none is given", async () => {
    const other = await startServer(["--dev", "--data-dir", join(dir, "data2")]);
    try {
      const token = /CUSTOS_TOKEN='(cst_[A-Za-z0-9_-]+)'/.exec(other.output())?.[1];
      expect(token).toBeDefined();
      const r = await runCli(["keys", "list"], { CUSTOS_ADDR: other.url, CUSTOS_TOKEN: token ?? "" });
      expect(r.code).toBe(0);
    } finally {
      await other.stop();
    }
  }, 60_000);
});
