/**
 * TPM2_PCR_Read (Part 3 §22.4). A TPM returns at most 8 digests per call and
 * says which PCRs it answered for in pcrSelectionOut; `pcrRead` asks again for
 * the rest until every requested PCR has a value.
 */
import type { TpmExec } from "../client.js";
import { TPM_CC } from "../constants.js";
import { TpmFormatError, TpmWriter, unmarshal } from "../marshal.js";
import { type PcrSelection, readDigests, readPcrSelections, writePcrSelections } from "../structures.js";

export interface PcrReadResponse {
  pcrUpdateCounter: number;
  selection: PcrSelection[];
  digests: Uint8Array[];
}

export async function pcrReadOnce(tpm: TpmExec, selection: PcrSelection[]): Promise<PcrReadResponse> {
  const w = new TpmWriter();
  writePcrSelections(w, selection);
  const res = await tpm.exec({
    code: TPM_CC.PCR_Read,
    handles: [],
    auths: [],
    params: w.finish(),
    responseHandles: 0,
  });
  return unmarshal(res.params, "TPM2_PCR_Read response", (r) => ({
    pcrUpdateCounter: r.u32("pcrUpdateCounter"),
    selection: readPcrSelections(r, "pcrSelectionOut"),
    digests: readDigests(r, "pcrValues"),
  }));
}

/** The values of `pcrs` in one bank, as a map from PCR index to digest. */
export async function pcrRead(
  tpm: TpmExec,
  hash: PcrSelection["hash"],
  pcrs: number[],
): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>();
  let rest = [...new Set(pcrs)].sort((a, b) => a - b);
  while (rest.length) {
    const res = await pcrReadOnce(tpm, [{ hash, pcrs: rest }]);
    const answered = res.selection.find((s) => s.hash === hash)?.pcrs ?? [];
    if (answered.length === 0)
      throw new TpmFormatError(
        `TPM2_PCR_Read: the TPM has no ${hash === 0x000b ? "SHA-256" : "SHA-1"} bank for PCRs ${rest.join(",")}`,
      );
    if (answered.length !== res.digests.length)
      throw new TpmFormatError("TPM2_PCR_Read: digest count does not match the selection");
    for (const [i, pcr] of answered.entries()) out.set(pcr, res.digests[i] as Uint8Array);
    rest = rest.filter((p) => !out.has(p));
  }
  return out;
}
