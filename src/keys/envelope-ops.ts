/**
 * Envelope operations — datakey, encrypt, decrypt, rewrap — over the key ring.
 * Each use is audited with its purpose and the HMAC'd context before the
 * caller gets an answer (fail-closed). Decryption fails with one opaque error
 * whatever went wrong (wrong context, altered blob, retired version, disabled
 * key, blob of another key): telling them apart would be an oracle. The audit
 * event says which it was. Clear data keys and payloads are wiped as soon as
 * they have been encoded for the response (JavaScript strings cannot be wiped;
 * README, Security considerations).
 */
import type { Auditor } from "../audit/auditor.js";
import { randomBytes, zero } from "../crypto/bytes.js";
import type { EncryptionContext } from "../crypto/context.js";
import { blobFromText, blobToText, DecryptError, parseHeader, unwrap, wrap } from "../crypto/envelope.js";
import { CustosError } from "../errors.js";
import { ThresholdKeyHandle } from "../protect/threshold.js";
import {
  isThresholdText,
  parseThresholdHeader,
  thresholdBlobFromText,
  thresholdBlobToText,
} from "../threshold/ecies.js";
import { type KeyRing, KeyUseError } from "./keyring.js";
import type { PurposeOfUse } from "./purpose.js";

export const MAX_PAYLOAD_BYTES = 4096;
export const DATA_KEY_BYTES = 32;

export interface UseRequest {
  principal: string;
  requestId?: string;
  purpose: PurposeOfUse;
  context: EncryptionContext;
}

export interface WrapResult {
  ciphertext: string;
  keyVersion: number;
}

export class DecryptionFailedError extends CustosError {
  constructor() {
    super(400, "decryption_failed", "decryption failed: the ciphertext, its context or its key do not match");
  }
}

export class EnvelopeService {
  constructor(
    private readonly keys: KeyRing,
    private readonly auditor: Auditor,
  ) {}

  async datakey(
    name: string,
    req: UseRequest,
    returnPlaintext: boolean,
  ): Promise<WrapResult & { plaintext?: string }> {
    const dek = randomBytes(DATA_KEY_BYTES);
    try {
      const out = await this.#wrap("keys.datakey", name, dek, req);
      return returnPlaintext ? { ...out, plaintext: toBase64(dek) } : out;
    } finally {
      zero(dek);
    }
  }

  async encrypt(name: string, plaintext: Uint8Array, req: UseRequest): Promise<WrapResult> {
    if (plaintext.length > MAX_PAYLOAD_BYTES) {
      throw new CustosError(400, "payload_too_large", `plaintext must be at most ${MAX_PAYLOAD_BYTES} bytes`);
    }
    try {
      return await this.#wrap("keys.encrypt", name, plaintext, req);
    } finally {
      zero(plaintext);
    }
  }

  async decrypt(
    name: string,
    ciphertext: string,
    req: UseRequest,
  ): Promise<{ plaintext: string; keyVersion: number }> {
    const { plaintext, keyVersion } = await this.#open("keys.decrypt", name, ciphertext, req);
    try {
      await this.#audit("keys.decrypt", name, keyVersion, req);
      return { plaintext: toBase64(plaintext), keyVersion };
    } finally {
      zero(plaintext);
    }
  }

  async rewrap(name: string, ciphertext: string, req: UseRequest): Promise<WrapResult> {
    const { plaintext, keyVersion: from } = await this.#open("keys.rewrap", name, ciphertext, req);
    try {
      return await this.#wrap("keys.rewrap", name, plaintext, req, `from version ${from}`);
    } finally {
      zero(plaintext);
    }
  }

  async #wrap(
    operation: string,
    name: string,
    plaintext: Uint8Array,
    req: UseRequest,
    reason?: string,
  ): Promise<WrapResult> {
    let key: Awaited<ReturnType<KeyRing["usable"]>>;
    try {
      key = await this.keys.usable(name);
    } catch (err) {
      if (err instanceof KeyUseError) {
        await this.#audit(operation, name, undefined, req, "deny", err.reason);
        throw new CustosError(409, err.reason, err.message);
      }
      if (err instanceof CustosError && err.status === 404) {
        await this.#audit(operation, name, undefined, req, "deny", err.code);
      }
      throw err;
    }
    // A threshold key wraps locally to its public key (format 2); every other level derives, then wraps.
    const text =
      key.handle instanceof ThresholdKeyHandle
        ? thresholdBlobToText(key.handle.wrap(plaintext, req.context))
        : blobToText(await wrap(key.handle, name, key.version, plaintext, req.context));
    await this.#audit(operation, name, key.version, req, "allow", reason);
    return { ciphertext: text, keyVersion: key.version };
  }

  async #open(
    operation: string,
    name: string,
    text: string,
    req: UseRequest,
  ): Promise<{ plaintext: Uint8Array; keyVersion: number }> {
    let version: number | undefined;
    const fail = async (reason: string): Promise<never> => {
      await this.#audit(operation, name, version, req, "deny", reason);
      throw new DecryptionFailedError();
    };
    let blob: Uint8Array;
    const threshold = isThresholdText(text);
    try {
      blob = threshold ? thresholdBlobFromText(text) : blobFromText(text);
      const header = threshold ? parseThresholdHeader(blob) : parseHeader(blob);
      version = header.keyVersion;
      if (header.keyName !== name) return await fail(`ciphertext belongs to key '${header.keyName}'`);
    } catch (err) {
      if (err instanceof DecryptError) return fail(err.reason);
      throw err;
    }
    let handle: Awaited<ReturnType<KeyRing["usable"]>>["handle"];
    try {
      handle = (await this.keys.usable(name, version)).handle;
    } catch (err) {
      if (err instanceof KeyUseError) return fail(err.reason);
      if (err instanceof CustosError && err.status === 404) {
        await this.#audit(operation, name, version, req, "deny", err.code);
      }
      throw err;
    }
    if (threshold !== handle instanceof ThresholdKeyHandle) {
      return fail(
        threshold
          ? "threshold ciphertext for a key without share nodes"
          : "format-1 ciphertext for a threshold key",
      );
    }
    try {
      const plaintext =
        handle instanceof ThresholdKeyHandle
          ? await handle.unwrap(blob, req.context)
          : await unwrap(handle, blob, req.context);
      return { plaintext, keyVersion: version };
    } catch (err) {
      if (err instanceof DecryptError) return fail(err.reason);
      // Too few share nodes answered well: availability, audited with the nodes named.
      if (err instanceof CustosError && err.code === "threshold_unavailable") {
        await this.#audit(operation, name, version, req, "deny", err.message);
      }
      throw err;
    }
  }

  #audit(
    operation: string,
    key: string,
    keyVersion: number | undefined,
    req: UseRequest,
    decision: "allow" | "deny" = "allow",
    reason?: string,
  ): Promise<void> {
    return this.auditor.record(
      this.auditor.event({
        principal: req.principal,
        operation,
        decision,
        reason,
        key,
        keyVersion,
        purpose: req.purpose,
        ...this.auditor.eventContext(req.context),
        requestId: req.requestId,
      }),
    );
  }
}

/** Standard base64 through a view, so no unzeroed copy of the bytes is left behind. */
function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
