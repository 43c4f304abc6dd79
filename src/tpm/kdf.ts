/**
 * The key derivations and the parameter cipher of TPM 2.0 sessions (Part 1
 * §11.4.10 KDFa and KDFe, §21 parameter encryption), over SHA-256 and
 * AES-128-CFB only, which is all custos asks of a TPM. Labels are
 * NUL-terminated, as the spec requires. node:crypto does the HMAC, hashing
 * and CFB: OpenSSL is fast, and these run on every TPM command.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from "node:crypto";
import { u32be, utf8 } from "../crypto/bytes.js";

function label(s: string): Uint8Array {
  const b = utf8(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** The counter-mode loop both KDFs share: block(i) for i = 1, 2, … concatenated and cut to `bits`. */
function counterKdf(bits: number, what: string, block: (counter: Uint8Array) => Uint8Array): Uint8Array {
  const bytes = bits / 8;
  if (!Number.isInteger(bytes) || bytes <= 0)
    throw new RangeError(`${what}: bits must be a positive multiple of 8`);
  const out = new Uint8Array(Math.ceil(bytes / 32) * 32);
  for (let i = 0; i * 32 < bytes; i++) out.set(block(u32be(i + 1)), i * 32);
  const result = out.slice(0, bytes);
  out.fill(0);
  return result;
}

/** KDFa(SHA-256, key, label, contextU, contextV, bits) (Part 1 §11.4.10.2). */
export function kdfa(
  key: Uint8Array,
  name: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  const l = label(name);
  return counterKdf(bits, "kdfa", (counter) =>
    createHmac("sha256", key)
      .update(counter)
      .update(l)
      .update(contextU)
      .update(contextV)
      .update(u32be(bits))
      .digest(),
  );
}

/** KDFe(SHA-256, Z, label, partyU, partyV, bits) (Part 1 §11.4.10.3), the one-step KDF of SP 800-56A. */
export function kdfe(
  z: Uint8Array,
  name: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Uint8Array {
  const l = label(name);
  return counterKdf(bits, "kdfe", (counter) =>
    createHash("sha256").update(counter).update(z).update(l).update(partyU).update(partyV).digest(),
  );
}

/** AES-128-CFB in place of `data`, key and IV from KDFa(sessionValue, "CFB", nonceNewer, nonceOlder) (Part 1 §21.3). */
export function cfb(
  direction: "encrypt" | "decrypt",
  sessionValue: Uint8Array,
  nonceNewer: Uint8Array,
  nonceOlder: Uint8Array,
  data: Uint8Array,
): void {
  const keyIv = kdfa(sessionValue, "CFB", nonceNewer, nonceOlder, 256);
  const key = keyIv.subarray(0, 16);
  const iv = keyIv.subarray(16, 32);
  const c =
    direction === "encrypt"
      ? createCipheriv("aes-128-cfb", key, iv)
      : createDecipheriv("aes-128-cfb", key, iv);
  const out = c.update(data);
  c.final();
  data.set(out);
  out.fill(0);
  keyIv.fill(0);
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
