/**
 * One round of distributed key generation or proactive refresh, from a share
 * node's side (docs/FORMATS.md §11.3): `makeDealing` draws this node's random
 * polynomial (constant term zero for a refresh), publishes its Feldman
 * commitments, HPKE-encrypts f(j) to each participant j and signs the whole
 * with the node's identity key; `openDealings` decrypts the shares addressed
 * to this node, checks each against its dealer's signature and commitments,
 * and sums them. Every dealer whose dealing fails is named and nothing is
 * kept: the round is abandoned rather than continued without that dealer,
 * which is what keeps a dealer from steering the key by being disqualified
 * (the Gennaro et al. attack on Joint-Feldman needs disqualifications).
 * The HPKE info binds the round hash and both indices, so a share cannot be
 * moved to another round, dealer or recipient; the coordinating custos node
 * relays only ciphertexts.
 */
import { createHash } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519.js";
import { b64u, concatBytes, u8, u32be, utf8, zero } from "../crypto/bytes.js";
import { HpkeOpenError, hpkeOpen, hpkeSeal } from "../crypto/hpke.js";
import type { Secret } from "../crypto/secret.js";
import { deal, evaluate, verifyShare } from "./feldman.js";
import { mod, type Point, pointFromBytes, pointToBytes, scalarFromBytes, scalarToBytes } from "./group.js";
import type { RequestSigner } from "./request-auth.js";
import { type Dealing, Round } from "./wire.js";

export const ROUND_LABEL = utf8("custos/threshold-round/v1");
export const DEALING_LABEL = utf8("custos/threshold-dealing/v1");
export const SHARE_INFO_LABEL = utf8("custos/threshold-share/v1");

/** H(label ‖ JSON of the round as zod re-emits it: fixed key order, so both sides hash alike). */
export function roundHash(round: Round): Uint8Array {
  const canonical = JSON.stringify(Round.parse(round));
  return new Uint8Array(createHash("sha256").update(ROUND_LABEL).update(canonical).digest());
}

export function dealingMessage(round: Round, d: Omit<Dealing, "signature">): Uint8Array {
  const parts: Uint8Array[] = [DEALING_LABEL, roundHash(round), u8(d.from), u8(d.commitments.length)];
  for (const c of d.commitments) parts.push(b64u.decode(c, "commitment"));
  for (const s of d.shares) {
    const ct = b64u.decode(s.ciphertext, "ciphertext");
    parts.push(u8(s.to), b64u.decode(s.enc, "enc"), u32be(ct.length), ct);
  }
  return concatBytes(...parts);
}

function shareInfo(round: Round, from: number, to: number): Uint8Array {
  return concatBytes(SHARE_INFO_LABEL, roundHash(round), u8(from), u8(to));
}

/** This node's dealing for `round` (it is participant `self`). */
export async function makeDealing(round: Round, self: number, signer: RequestSigner): Promise<Dealing> {
  const zeroSecret = round.kind === "refresh";
  const d = deal(round.threshold, zeroSecret);
  const identity = signer.publicKey;
  try {
    const shares = await Promise.all(
      round.participants.map(async (p) => {
        const y = scalarToBytes(evaluate(d.coefficients, p.index));
        try {
          const sealed = await hpkeSeal(
            b64u.decode(p.hpkeKey, "hpkeKey"),
            y,
            shareInfo(round, self, p.index),
            identity,
          );
          return { to: p.index, enc: b64u.encode(sealed.enc), ciphertext: b64u.encode(sealed.ciphertext) };
        } finally {
          zero(y);
        }
      }),
    );
    const unsigned = {
      from: self,
      commitments: d.commitments.map((c) => b64u.encode(pointToBytes(c))),
      shares,
    };
    return { ...unsigned, signature: b64u.encode(signer.sign(dealingMessage(round, unsigned))) };
  } finally {
    d.coefficients.fill(0n);
  }
}

/** A dealing that did not verify, naming its dealer. */
export class DealingError extends Error {
  constructor(readonly dealers: { index: number; node: string; reason: string }[]) {
    super(`dealings refused: ${dealers.map((d) => `${d.node} (index ${d.index}): ${d.reason}`).join("; ")}`);
    this.name = "DealingError";
  }
}

/**
 * Opens and checks every dealing addressed to participant `self`; returns
 * the sum of the shares (mod ℓ). Throws DealingError naming each bad dealer.
 */
export async function openDealings(
  round: Round,
  self: number,
  dealings: readonly Dealing[],
  hpkePrivateKey: Secret,
): Promise<bigint> {
  const zeroSecret = round.kind === "refresh";
  const expectedCommitments = zeroSecret ? round.threshold - 1 : round.threshold;
  const bad: { index: number; node: string; reason: string }[] = [];
  const byIndex = new Map(round.participants.map((p) => [p.index, p]));
  const from = new Set<number>();
  let sum = 0n;
  for (const d of dealings) {
    const dealer = byIndex.get(d.from);
    if (!dealer || from.has(d.from)) {
      bad.push({
        index: d.from,
        node: dealer?.node ?? "?",
        reason: "not a participant, or a second dealing",
      });
      continue;
    }
    from.add(d.from);
    const fail = (reason: string) => bad.push({ index: d.from, node: dealer.node, reason });
    let commitments: Point[];
    try {
      commitments = d.commitments.map((c, l) =>
        pointFromBytes(b64u.decode(c, `commitment ${l}`), `commitment ${l}`),
      );
    } catch (err) {
      fail((err as Error).message);
      continue;
    }
    if (commitments.length !== expectedCommitments) {
      fail(`has ${commitments.length} commitments, expected ${expectedCommitments}`);
      continue;
    }
    const { signature, ...unsigned } = d;
    let signed = false;
    try {
      signed = ed25519.verify(
        b64u.decode(signature, "signature"),
        dealingMessage(round, unsigned),
        b64u.decode(dealer.identityKey, "identityKey"),
        { zip215: false },
      );
    } catch {
      signed = false;
    }
    if (!signed) {
      fail("signature does not verify against the dealer's identity key");
      continue;
    }
    const mine = d.shares.filter((s) => s.to === self);
    if (mine.length !== 1 || d.shares.length !== round.participants.length) {
      fail("does not carry exactly one share for every participant");
      continue;
    }
    let y: bigint;
    try {
      const bytes = await hpkeOpen(
        hpkePrivateKey,
        b64u.decode(mine[0]!.enc, "enc"),
        b64u.decode(mine[0]!.ciphertext, "ciphertext"),
        shareInfo(round, d.from, self),
        b64u.decode(dealer.identityKey, "identityKey"),
      );
      try {
        y = scalarFromBytes(bytes, "share", true);
      } finally {
        zero(bytes);
      }
    } catch (err) {
      fail(
        err instanceof HpkeOpenError ? "share does not open with this node's key" : (err as Error).message,
      );
      continue;
    }
    if (!verifyShare(y, self, commitments, zeroSecret)) {
      fail("share does not match the dealer's Feldman commitments");
      continue;
    }
    sum = mod(sum + y);
  }
  for (const p of round.participants) {
    if (!from.has(p.index)) bad.push({ index: p.index, node: p.node, reason: "no dealing" });
  }
  if (bad.length) throw new DealingError(bad);
  return sum;
}
