/** TPM2_GetCapability (Part 3 §30.2), for TPM properties (TPM_CAP_TPM_PROPERTIES) and handle lists (TPM_CAP_HANDLES). */
import type { TpmExec } from "../client.js";
import { LIMITS, TPM_CAP, TPM_CC } from "../constants.js";
import { TpmFormatError, type TpmReader, TpmWriter, unmarshal } from "../marshal.js";

/** Asks for `count` items of `capability` from `first`; `read` parses the list after the capability tag. */
async function getCapability<T>(
  tpm: TpmExec,
  capability: number,
  first: number,
  count: number,
  read: (r: TpmReader) => T,
): Promise<{ moreData: boolean } & T> {
  const params = new TpmWriter().u32(capability).u32(first).u32(count).finish();
  const res = await tpm.exec({
    code: TPM_CC.GetCapability,
    handles: [],
    auths: [],
    params,
    responseHandles: 0,
  });
  return unmarshal(res.params, "TPM2_GetCapability response", (r) => {
    const moreData = r.u8("moreData") !== 0;
    const cap = r.u32("capability");
    if (cap !== capability) throw new TpmFormatError(`capability ${cap} answered for ${capability}`);
    return { moreData, ...read(r) };
  });
}

export interface PropertiesResponse {
  moreData: boolean;
  properties: Map<number, number>;
}

export function getProperties(tpm: TpmExec, first: number, count: number): Promise<PropertiesResponse> {
  return getCapability(tpm, TPM_CAP.TPM_PROPERTIES, first, count, (r) => {
    const n = r.u32("TPML_TAGGED_TPM_PROPERTY.count");
    if (n > 256) throw new TpmFormatError(`TPML_TAGGED_TPM_PROPERTY.count ${n} exceeds 256`);
    const properties = new Map<number, number>();
    for (let i = 0; i < n; i++) properties.set(r.u32("property"), r.u32("value"));
    return { properties };
  });
}

export interface HandlesResponse {
  moreData: boolean;
  handles: number[];
}

/** Handles in use from `first` (e.g. 0x81000000 for persistent objects). */
export function getHandles(tpm: TpmExec, first: number, count: number): Promise<HandlesResponse> {
  return getCapability(tpm, TPM_CAP.HANDLES, first, count, (r) => {
    const n = r.u32("TPML_HANDLE.count");
    if (n > LIMITS.listEntries * 4) throw new TpmFormatError(`TPML_HANDLE.count ${n} is too large`);
    const handles: number[] = [];
    for (let i = 0; i < n; i++) handles.push(r.u32("handle"));
    return { handles };
  });
}
