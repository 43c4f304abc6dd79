/**
 * A partial decryption (docs/FORMATS.md §11.5): share node i answers a point
 * R with P_i = x_i·R and a DLEQ proof that log_G(Y_i) = log_R(P_i). R is
 * always a blinded point ρ·R_ciphertext chosen by the custos node (unwrap.ts);
 * nothing here depends on that, the proof holds for any point. The proof
 * context binds the share id, the epoch and the index, so a proof made for one
 * key, one refresh epoch or one index does not verify for another — in
 * particular, a share kept from before a refresh proves nothing against the
 * new verification shares.
 */
import { concatBytes, hex, u8, u32be } from "../crypto/bytes.js";
import { type DleqProof, type DleqStatement, proveDleq } from "./dleq.js";
import { G, type Point } from "./group.js";

/** shareId(16) ‖ u32(epoch) ‖ u8(index). */
export function partialContext(shareId: string, epoch: number, index: number): Uint8Array {
  return concatBytes(hex.decode(shareId, "shareId"), u32be(epoch), u8(index));
}

/** x·R with its proof; `x` is the secret share (constant-time multiplication), `y` = x·G if known. */
export function computePartial(
  x: bigint,
  r: Point,
  shareId: string,
  epoch: number,
  index: number,
  y: Point = G.multiply(x),
): { partial: Point; proof: DleqProof } {
  const partial = r.multiply(x);
  const statement: DleqStatement = {
    context: partialContext(shareId, epoch, index),
    y,
    r,
    p: partial,
  };
  return { partial, proof: proveDleq(x, statement) };
}
