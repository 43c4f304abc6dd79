/**
 * The witness commands' usage errors and exit codes (README, "CLI exit
 * codes"): keygen writes a 0600 private file and refuses to overwrite; the
 * witness needs --log, --key and --data-dir and a usable key file; the server
 * needs --witness and --witness-key together, with readable key files.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../e2e/harness.js";

describe("custos witness: usage and exit codes", () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "custos-witness-cli-"));
    expect((await runCli(["witness", "keygen", "--out", join(dir, "w1")])).code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("keygen writes the private key 0600 and refuses to overwrite either file (2)", async () => {
    expect(statSync(join(dir, "w1.key")).mode & 0o777).toBe(0o600);
    const again = await runCli(["witness", "keygen", "--out", join(dir, "w1")]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists/);
    const badName = await runCli(["witness", "keygen", "--out", join(dir, "Bad Name")]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/--name/);
  });

  it("the witness refuses to start without --log, --key, --data-dir or with a bad key file (2)", async () => {
    const key = join(dir, "w1.key");
    const cases: [string[], RegExp][] = [
      [["--key", key, "--data-dir", dir], /--log URL/],
      [["--log", "http://127.0.0.1:1", "--data-dir", dir], /--key FILE/],
      [["--log", "http://127.0.0.1:1", "--key", key], /--data-dir/],
      [
        ["--log", "http://127.0.0.1:1", "--key", join(dir, "w1.pub"), "--data-dir", dir],
        /not a usable witness key/,
      ],
      [["--log", "a", "--log", "b", "--log-key", "k", "--key", key, "--data-dir", dir], /once per --log/],
      [["--log", "a", "--key", key, "--data-dir", dir, "--interval", "0"], /--interval/],
      [["--log", "a", "--log-key", "short", "--key", key, "--data-dir", dir], /43 base64url/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["witness", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    // Seven CLI starts in a row: each transpiles the sources (about 1 s idle, 5 s or more on a loaded
    // two-core machine), so the default 30 s is an idle machine's budget.
  }, 120_000);

  it("the server needs --witness and --witness-key together, and readable key files (2)", async () => {
    const only = await runCli(["server", "--dev", "--witness", "http://127.0.0.1:1"]);
    expect(only.code).toBe(2);
    expect(only.stderr).toMatch(/together/);
    writeFileSync(join(dir, "junk.pub"), "{}");
    const junk = await runCli([
      ...["server", "--dev", "--witness", "http://127.0.0.1:1"],
      ...["--witness-key", join(dir, "junk.pub")],
    ]);
    expect(junk.code).toBe(2);
    expect(junk.stderr).toMatch(/--witness-key/);
  });
});
