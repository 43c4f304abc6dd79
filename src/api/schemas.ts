/**
 * Request and response schemas of the HTTP API. They are the one place input
 * is checked at the edge: strict objects (an unknown field is an error, not
 * ignored), bounded strings, maps and arrays, and messages that name the
 * field and the limit. The same schemas produce the OpenAPI document.
 */
import { z } from "@hono/zod-openapi";
import { CONTEXT_KEY_RE, MAX_CONTEXT_ENTRIES, MAX_CONTEXT_VALUE_BYTES } from "../crypto/context.js";
import { KEY_NAME_RE } from "../crypto/envelope.js";
import { CeremonyKindSchema, LegacySubmissionSchema } from "../custody/ceremony-kind.js";
import { TreeUnsealSchema } from "../custody/tree-share-format.js";
import { MAX_PAYLOAD_BYTES } from "../keys/envelope-ops.js";
import { PURPOSES_OF_USE } from "../keys/purpose.js";
import { GRANTABLE_ROLES } from "../policy/authorizer.js";

const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const B64U_RE = /^[A-Za-z0-9_-]*$/;
const HEX32_RE = /^[0-9a-f]{32}$/;
/** In `u` mode a surrogate pair is one code point, so this matches only unpaired halves. */
const LONE_SURROGATE_RE = /\p{Cs}/u;

export const ErrorSchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string() }).catchall(z.unknown()),
  })
  .openapi("Error");

export const KeyNameParam = z.object({
  name: z
    .string()
    .regex(KEY_NAME_RE, "key name must match ^[a-z0-9][a-z0-9._-]{0,127}$")
    .openapi({ param: { name: "name", in: "path" }, example: "ehr-nyu-notes" }),
});

/**
 * JSON.parse keeps `"__proto__"` as an own property, but the map zod builds
 * would drop it (assigning `__proto__` sets a prototype), silently unbinding
 * that entry from the ciphertext; it is refused while the raw input still has it.
 */
const noProtoKey = (value: unknown, ctx: z.RefinementCtx) => {
  if (typeof value === "object" && value !== null && Object.hasOwn(value, "__proto__")) {
    ctx.addIssue({ code: "custom", message: "context key '__proto__' is not allowed" });
    return z.NEVER;
  }
  return value;
};

const ContextMap = z
  .record(z.string().regex(CONTEXT_KEY_RE, `context keys must match ${CONTEXT_KEY_RE.source}`), z.string())
  .refine((m) => Object.keys(m).length <= MAX_CONTEXT_ENTRIES, {
    message: `context may have at most ${MAX_CONTEXT_ENTRIES} entries`,
  })
  .refine((m) => Object.values(m).every((v) => Buffer.byteLength(v, "utf8") <= MAX_CONTEXT_VALUE_BYTES), {
    message: `context values may be at most ${MAX_CONTEXT_VALUE_BYTES} bytes`,
  })
  .refine((m) => Object.values(m).every((v) => !LONE_SURROGATE_RE.test(v)), {
    message: "context values must be well-formed Unicode (no lone surrogates)",
  })
  .openapi("EncryptionContext", { example: { institution: "nyu", patient: "MRN-0012345" } });

export const ContextSchema = z.preprocess(noProtoKey, ContextMap);

export const PurposeSchema = z
  .enum(PURPOSES_OF_USE, { error: "purpose must be an HL7 PurposeOfUse code such as TREAT, ETREAT, HPAYMT" })
  .openapi("PurposeOfUse");

const maxB64 = Math.ceil(MAX_PAYLOAD_BYTES / 3) * 4;
const PlaintextSchema = z
  .string()
  .max(maxB64, `plaintext must be at most ${MAX_PAYLOAD_BYTES} bytes (base64)`)
  .regex(B64_RE, "plaintext must be standard base64");
const CiphertextSchema = z
  .string()
  .max(8192, "ciphertext is too long")
  .regex(/^custos:v[0-9]+:[A-Za-z0-9_-]+$/, "ciphertext must be in the form custos:v1:<base64url>")
  .openapi({ example: "custos:v1:AQ1laHItbnl1LW5vdGVzAAAAAQ…" });

const use = { context: ContextSchema.default({}), purpose: PurposeSchema };

export const DatakeyRequest = z.strictObject(use).openapi("DatakeyRequest");
export const EncryptRequest = z
  .strictObject({ ...use, plaintext: PlaintextSchema })
  .openapi("EncryptRequest");
export const DecryptRequest = z
  .strictObject({ ...use, ciphertext: CiphertextSchema })
  .openapi("DecryptRequest");

export const WrapResponse = z
  .object({ ciphertext: z.string(), keyVersion: z.number().int(), plaintext: z.string().optional() })
  .openapi("WrapResponse");
export const DecryptResponse = z
  .object({ plaintext: z.string(), keyVersion: z.number().int() })
  .openapi("DecryptResponse");

const RotationPeriod = z
  .number()
  .int()
  .min(3600, "rotationPeriodSeconds must be at least 3600")
  .max(10 * 365 * 86400, "rotationPeriodSeconds must be at most ten years");

const ShareNodeNames = z
  .array(
    z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "share node names are configured with --share-node NAME=URL"),
  )
  .min(1)
  .max(32);

export const CreateKeyRequest = z
  .strictObject({
    name: KeyNameParam.shape.name,
    rotationPeriodSeconds: RotationPeriod.nullable().default(null),
    /** Where the key lives on each node; the node's preferred level (tpm where there is a TPM) when omitted. */
    protection: z.enum(["software", "tpm", "threshold"]).optional(),
    /** protection "threshold": the share nodes (by configured name) holding the key; default all. */
    shareNodes: ShareNodeNames.optional(),
    /** protection "threshold": how many of `shareNodes` an unwrap needs; default a majority. */
    threshold: z.number().int().min(1).max(32).optional(),
    /** protection "threshold": instead of shareNodes/threshold, a quorum of every one of these sets. */
    trustSets: z
      .array(
        z.strictObject({
          name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
          shareNodes: ShareNodeNames,
          threshold: z.number().int().min(1).max(32),
        }),
      )
      .min(1)
      .max(8)
      .optional(),
  })
  .refine((b) => b.protection === "threshold" || (b.shareNodes ?? b.threshold ?? b.trustSets) === undefined, {
    message: "shareNodes, threshold and trustSets are for protection 'threshold' only",
  })
  .refine((b) => b.trustSets === undefined || (b.shareNodes ?? b.threshold) === undefined, {
    message: "give either trustSets or shareNodes/threshold, not both",
  })
  .openapi("CreateKeyRequest");

export const UpdateKeyRequest = z
  .strictObject({
    enabled: z.boolean().optional(),
    minDecryptionVersion: z.number().int().min(1).optional(),
    rotationPeriodSeconds: RotationPeriod.nullable().optional(),
  })
  .openapi("UpdateKeyRequest");

export const KeyInfoSchema = z
  .object({
    name: z.string(),
    protection: z.string(),
    state: z.enum(["enabled", "disabled", "pending-destruction", "destroyed"]),
    latestVersion: z.number().int(),
    minDecryptionVersion: z.number().int(),
    rotationPeriodSeconds: z.number().int().nullable(),
    deletionAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    versions: z.array(z.object({ version: z.number().int(), state: z.string(), createdAt: z.string() })),
    /** Threshold keys: the latest version's public key and share nodes, with the keys pinned at generation. */
    threshold: z
      .object({
        publicKey: z.string(),
        sets: z.array(
          z.object({
            name: z.string(),
            threshold: z.number().int(),
            epoch: z.number().int(),
            shareNodes: z.array(z.object({ node: z.string(), identityKey: z.string(), hpkeKey: z.string() })),
          }),
        ),
      })
      .optional(),
  })
  .openapi("Key");

export const CustodianSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "custodian id must match ^[a-z0-9][a-z0-9._-]{0,63}$"),
  publicKey: z.string().length(43, "publicKey must be 32 bytes of base64url").regex(B64U_RE),
});

export const InitRequest = z
  .union([
    z.strictObject({
      threshold: z.number().int().min(2).max(32),
      custodians: z.array(CustodianSchema).min(2).max(32),
    }),
    z.strictObject({
      // Checked in full by custody/tree.ts's TreeInputSchema in the route (a recursive schema the OpenAPI document cannot hold).
      tree: z
        .record(z.string(), z.unknown())
        .openapi({ description: "a custody tree (docs/FORMATS.md §5.5): {threshold, of: [...]}" }),
    }),
  ])
  .openapi("InitRequest");

export const ShareFileSchema = z.object({}).catchall(z.unknown()).openapi("ShareFile");

export const InitResponse = z
  .object({
    initId: z.string(),
    threshold: z.number().int(),
    shares: z.array(ShareFileSchema),
    rootToken: z.string(),
  })
  .openapi("InitResponse");

export const UnsealRequest = z
  .union([
    z.strictObject({
      format: z.literal("custos-unseal/v3"),
      ceremony: CeremonyKindSchema,
      nonce: z.string().regex(HEX32_RE, "nonce must be 32 hex digits"),
      custodian: CustodianSchema.shape.id,
      enc: z.string().max(64).regex(B64U_RE, "enc must be base64url"),
      ciphertext: z.string().max(512).regex(B64U_RE, "ciphertext must be base64url"),
    }),
    TreeUnsealSchema,
    // Recognised only to be refused by name (400 unsupported_format, docs/FORMATS.md §5.3).
    LegacySubmissionSchema,
  ])
  .openapi("UnsealRequest");

export const RepositoryUnsealResponse = z
  .object({
    status: z.lazy(() => SealStatusSchema),
    failures: z.array(z.object({ path: z.string(), reason: z.string() })),
  })
  .openapi("RepositoryUnsealResponse");

export const SealStatusSchema = z
  .object({
    initialized: z.boolean(),
    sealed: z.boolean(),
    threshold: z.number().int(),
    shares: z.number().int(),
    progress: z.number().int(),
    nonce: z.string().nullable(),
    ceremonyPublicKey: z.string().nullable(),
    ceremonyExpiresAt: z.string().nullable(),
    ceremonySignature: z.string().nullable(),
    nodePublicKey: z.string(),
    initId: z.string().nullable(),
    custodians: z.array(z.string()),
    submitted: z.array(z.string()),
    rootGeneration: z.number().int(),
    /** Where this node holds the root key once unsealed: "tpm" or "software". */
    protection: z.enum(["software", "tpm"]).optional(),
    /** The TPM seal, on a node with a TPM: its state and why it last failed to open, if it did. */
    tpmSeal: z.lazy(() => TpmSealStatusSchema).optional(),
    /** The custody tree with, at each gate, how many members count and how many are missing (docs/FORMATS.md §5.5). */
    tree: z.unknown().nullable().openapi({
      description:
        "gate: {path, name?, threshold, satisfied, have, missing, of}; leaf: {path, kind, id, present}",
    }),
  })
  .openapi("SealStatus");

export const TpmSealStatusSchema = z
  .object({
    state: z.enum(["off", "pending", "active"]),
    pcrs: z.array(z.number().int()),
    sealedAt: z.string().nullable(),
    changedPcrs: z.array(z.number().int()).nullable(),
    lastError: z.string().nullable(),
  })
  .openapi("TpmSealStatus");

export const TpmSealEnableRequest = z
  .strictObject({
    pcrs: z
      .array(z.number().int().min(0).max(23))
      .min(1)
      .max(24)
      .default([7])
      .describe("SHA-256 PCRs the seal is bound to; PCR 7 (Secure Boot state) by default"),
  })
  .openapi("TpmSealEnableRequest");

export const CreateTokenRequest = z
  .strictObject({
    principal: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/, "principal must be 1-128 of [A-Za-z0-9._@:-]"),
    roles: z
      .array(z.enum(GRANTABLE_ROLES, { error: `roles must be among ${GRANTABLE_ROLES.join(", ")}` }))
      .min(1)
      .max(4),
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(366 * 86400)
      .optional(),
  })
  .openapi("CreateTokenRequest");

export const TokenResponse = z
  .object({
    token: z.string(),
    principal: z.string(),
    roles: z.array(z.string()),
    expiresAt: z.string().nullable(),
  })
  .openapi("Token");

const filterText = z.string().min(1).max(256);
const RFC3339_HINT = "times are RFC 3339 UTC, e.g. 2026-11-24T10:00:00.000Z";
const rfc3339 = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/, RFC3339_HINT)
  // The shape is not enough: 2026-13-45T99:99:99Z must be a 400, not a RangeError (a 500) later.
  .refine((t) => {
    const d = new Date(t);
    return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 19) === t.slice(0, 19);
  }, `no such time; ${RFC3339_HINT}`);

export const AuditQuery = z.strictObject({
  from: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  principal: filterText.optional(),
  key: filterText.optional(),
  operation: filterText.optional(),
  purpose: PurposeSchema.optional(),
  decision: z.enum(["allow", "deny", "error"]).optional(),
  since: rfc3339.optional(),
  until: rfc3339.optional(),
  /** A patient id, MRN or record id: matched through its keyed HMACs, never stored. */
  patient: z.string().min(1).max(256).optional(),
});

export const AuditEventsResponse = z
  .object({
    events: z.array(
      z.object({
        seq: z.number().int(),
        hash: z.string(),
        canonical: z.string(),
        event: z.record(z.string(), z.unknown()),
      }),
    ),
    next: z.number().int().nullable(),
  })
  .openapi("AuditEvents");
