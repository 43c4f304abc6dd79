/**
 * Key administration and envelope commands: `keys create|list|show|rotate|
 * enable|disable|update|destroy|cancel-destroy`, `datakey`, `encrypt`,
 * `decrypt`, `rewrap` (tokens: commands/tokens.ts). Thin: each maps to one API call
 * and prints the answer as text or JSON.
 */
import type { Command } from "commander";
import type { KeyInfo } from "../../keys/keyring.js";
import { CliError, type Client, EXIT } from "../client.js";
import { asFormat, collect, parseContext, print } from "../io.js";

function describeKey(k: KeyInfo): string {
  return [
    `Name:                   ${k.name}`,
    `State:                  ${k.state}${k.deletionAt ? ` (destruction at ${k.deletionAt})` : ""}`,
    `Protection:             ${k.protection}`,
    `Latest version:         ${k.latestVersion}`,
    `Min decryption version: ${k.minDecryptionVersion}`,
    `Rotation period:        ${k.rotationPeriodSeconds === null ? "none" : `${k.rotationPeriodSeconds}s`}`,
    `Versions:               ${k.versions.map((v) => `v${v.version} (${v.state}, ${v.createdAt})`).join(", ")}`,
    ...(k.threshold
      ? [
          `Public key:             ${k.threshold.publicKey}`,
          ...k.threshold.sets.map(
            (s) =>
              `Trust set ${s.name}:${" ".repeat(Math.max(1, 13 - s.name.length))}${s.threshold} of ${s.shareNodes.length} (epoch ${s.epoch}): ${s.shareNodes.map((n) => `${n.node} [${n.identityKey}]`).join(", ")}`,
          ),
        ]
      : []),
  ].join("\n");
}

const formatOption = ["--format <format>", "text or json", "text"] as const;
const enc = encodeURIComponent;

export function keyCommands(program: Command, client: () => Client): void {
  const keys = program.command("keys").description("manage keys");
  const keyAction = (
    name: string,
    description: string,
    call: (c: Client, key: string) => Promise<KeyInfo>,
    done: (k: KeyInfo) => string,
  ) =>
    keys
      .command(`${name} <name>`)
      .description(description)
      .option(...formatOption)
      .action(async (key: string, opts: { format: string }) => {
        const format = asFormat(opts.format);
        const info = await call(client(), key);
        print(format, info, () => `${done(info)}\n${describeKey(info)}`);
      });

  keys
    .command("create <name>")
    .description("create a key")
    .option("--rotation-period <seconds>", "rotate automatically after this many seconds", Number)
    .option("--protection <level>", "software, tpm or threshold (default: tpm on a node with a TPM)")
    .option(
      "--share-nodes <a,b,...>",
      "threshold: the share nodes (names configured on the server); default all",
    )
    .option("--threshold <k>", "threshold: how many share nodes an unwrap needs; default a majority", Number)
    .option(
      "--trust-set <name:k:a,b,...>",
      "threshold: a quorum of k of these share nodes is needed (repeatable)",
      collect,
    )
    .option(...formatOption)
    .action(
      async (
        name: string,
        opts: {
          rotationPeriod?: number;
          protection?: string;
          shareNodes?: string;
          threshold?: number;
          trustSet?: string[];
          format: string;
        },
      ) => {
        const format = asFormat(opts.format);
        const trustSets = opts.trustSet?.map((t) => {
          const m = /^([a-z0-9][a-z0-9._-]*):([0-9]+):([a-z0-9._,-]+)$/.exec(t);
          if (!m) throw new CliError(`--trust-set '${t}' must be NAME:K:NODE,NODE,...`, EXIT.usage);
          return { name: m[1], threshold: Number(m[2]), shareNodes: m[3]!.split(",") };
        });
        const info = await client().request<KeyInfo>("POST", "/v1/keys", {
          name,
          ...(opts.rotationPeriod !== undefined ? { rotationPeriodSeconds: opts.rotationPeriod } : {}),
          ...(opts.protection !== undefined ? { protection: opts.protection } : {}),
          ...(opts.shareNodes !== undefined ? { shareNodes: opts.shareNodes.split(",") } : {}),
          ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
          ...(trustSets !== undefined ? { trustSets } : {}),
        });
        print(format, info, () => `Created key ${name}.\n${describeKey(info)}`);
      },
    );
  keys
    .command("refresh-shares <name>")
    .description("threshold keys: re-randomise every share on the share nodes (same public key)")
    .option(...formatOption)
    .action(async (key: string, opts: { format: string }) => {
      const format = asFormat(opts.format);
      const info = await client().request<KeyInfo & { refreshed: number[]; notCommitted: string[] }>(
        "POST",
        `/v1/keys/${enc(key)}/refresh-shares`,
      );
      const late = info.notCommitted.length
        ? `\nNot yet told to drop old shares (retried at the next refresh): ${info.notCommitted.join(", ")}`
        : "";
      print(
        format,
        info,
        () =>
          `Refreshed the shares of ${key}, versions ${info.refreshed.join(", ")}.${late}\n${describeKey(info)}`,
      );
    });
  keys
    .command("list")
    .description("list keys")
    .option(...formatOption)
    .action(async (opts: { format: string }) => {
      const format = asFormat(opts.format);
      const { keys: list } = await client().request<{ keys: KeyInfo[] }>("GET", "/v1/keys");
      print(format, list, () =>
        list.length === 0
          ? "No keys."
          : list.map((k) => `${k.name}\tv${k.latestVersion}\t${k.state}`).join("\n"),
      );
    });
  keyAction(
    "show",
    "describe a key",
    (c, k) => c.request("GET", `/v1/keys/${enc(k)}`),
    () => "",
  );
  keyAction(
    "rotate",
    "add a new version",
    (c, k) => c.request("POST", `/v1/keys/${enc(k)}/rotate`, {}),
    (i) => `Rotated ${i.name} to version ${i.latestVersion}.`,
  );
  keyAction(
    "enable",
    "enable a key",
    (c, k) => c.request("PATCH", `/v1/keys/${enc(k)}`, { enabled: true }),
    (i) => `Enabled ${i.name}.`,
  );
  keyAction(
    "disable",
    "disable a key (no use until enabled)",
    (c, k) => c.request("PATCH", `/v1/keys/${enc(k)}`, { enabled: false }),
    (i) => `Disabled ${i.name}.`,
  );
  keyAction(
    "destroy",
    "schedule destruction after the waiting period",
    (c, k) => c.request("DELETE", `/v1/keys/${enc(k)}`),
    (i) =>
      `Destruction of ${i.name} scheduled for ${i.deletionAt}; custos keys cancel-destroy ${i.name} stops it.`,
  );
  keyAction(
    "cancel-destroy",
    "cancel a scheduled destruction",
    (c, k) => c.request("POST", `/v1/keys/${enc(k)}/cancel-destruction`, {}),
    (i) => `Destruction of ${i.name} cancelled; the key is disabled until enabled.`,
  );
  keys
    .command("update <name>")
    .description("change the minimum decryption version or the rotation period")
    .option("--min-decryption-version <v>", "refuse ciphertexts of older versions", Number)
    .option("--rotation-period <seconds>", "rotation period in seconds, or 0 for none", Number)
    .option(...formatOption)
    .action(
      async (
        name: string,
        opts: { minDecryptionVersion?: number; rotationPeriod?: number; format: string },
      ) => {
        const format = asFormat(opts.format);
        const body: Record<string, number | null> = {};
        if (opts.minDecryptionVersion !== undefined) body.minDecryptionVersion = opts.minDecryptionVersion;
        if (opts.rotationPeriod !== undefined)
          body.rotationPeriodSeconds = opts.rotationPeriod === 0 ? null : opts.rotationPeriod;
        if (Object.keys(body).length === 0) {
          throw new CliError("give --min-decryption-version or --rotation-period", EXIT.usage);
        }
        const info = await client().request<KeyInfo>("PATCH", `/v1/keys/${enc(name)}`, body);
        print(format, info, () => `Updated ${name}.\n${describeKey(info)}`);
      },
    );

  const useOptions = (cmd: Command) =>
    cmd
      .option("--context <k=v>", "encryption context entry (repeatable)", collect)
      .requiredOption("--purpose <code>", "HL7 PurposeOfUse code (TREAT, ETREAT, HPAYMT, ...)")
      .option("--format <format>", "text or json", "text");
  type UseOpts = { context?: string[]; purpose: string; format: string };
  const use = (opts: UseOpts) => ({ context: parseContext(opts.context), purpose: opts.purpose });

  useOptions(program.command("datakey <name>").description("make a data key (clear and wrapped)"))
    .option("--wrapped-only", "return only the wrapped data key")
    .action(async (name: string, opts: UseOpts & { wrappedOnly?: boolean }) => {
      const format = asFormat(opts.format);
      const path = `/v1/keys/${enc(name)}/datakey${opts.wrappedOnly ? "/wrapped" : ""}`;
      const out = await client().request<{ ciphertext: string; keyVersion: number; plaintext?: string }>(
        "POST",
        path,
        use(opts),
      );
      print(format, out, () =>
        [
          `ciphertext: ${out.ciphertext}`,
          `keyVersion: ${out.keyVersion}`,
          ...(out.plaintext ? [`plaintext:  ${out.plaintext}`] : []),
        ].join("\n"),
      );
    });
  useOptions(program.command("encrypt <name>").description("encrypt a small payload (≤ 4 KiB)"))
    .requiredOption("--plaintext <base64>", "the payload, base64")
    .action(async (name: string, opts: UseOpts & { plaintext: string }) => {
      const format = asFormat(opts.format);
      const out = await client().request<{ ciphertext: string; keyVersion: number }>(
        "POST",
        `/v1/keys/${enc(name)}/encrypt`,
        {
          ...use(opts),
          plaintext: opts.plaintext,
        },
      );
      print(format, out, () => `ciphertext: ${out.ciphertext}\nkeyVersion: ${out.keyVersion}`);
    });
  for (const [verb, description] of [
    ["decrypt", "decrypt a ciphertext"],
    ["rewrap", "re-wrap a ciphertext under the key's latest version"],
  ] as const) {
    useOptions(program.command(`${verb} <name>`).description(description))
      .requiredOption("--ciphertext <text>", "custos:v1:... ciphertext")
      .action(async (name: string, opts: UseOpts & { ciphertext: string }) => {
        const format = asFormat(opts.format);
        const out = await client().request<Record<string, string | number>>(
          "POST",
          `/v1/keys/${enc(name)}/${verb}`,
          {
            ...use(opts),
            ciphertext: opts.ciphertext,
          },
        );
        print(format, out, () =>
          Object.entries(out)
            .map(([k, v]) => `${k}: ${v}`)
            .join("\n"),
        );
      });
  }
}
