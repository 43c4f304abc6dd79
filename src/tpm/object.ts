/**
 * What the client knows about an object it has loaded: its handle, its
 * public area and its name. The name is always computed here from the public
 * bytes, never taken from the TPM's word, so the cpHash of a later command
 * names the object we meant.
 */
import type { HandleArg } from "./command.js";
import { handleName, objectName, type TpmtPublic } from "./structures.js";

export interface LoadedObject {
  handle: number;
  pub: TpmtPublic;
  publicBytes: Uint8Array;
  name: Uint8Array;
}

export function objectArg(o: LoadedObject): HandleArg {
  return { handle: o.handle, name: o.name };
}

/** A permanent handle (hierarchy, PCR) or a session as a command handle: its name is itself. */
export function permanentArg(handle: number): HandleArg {
  return { handle, name: handleName(handle) };
}

export function loadedObject(handle: number, pub: TpmtPublic, publicBytes: Uint8Array): LoadedObject {
  return { handle, pub, publicBytes, name: objectName(publicBytes) };
}
