#!/usr/bin/env node
// The custos command. It runs the TypeScript sources through tsx, so a fresh
// clone works after `npm install` with no build step; `npm run build` checks
// that the same sources compile with tsc.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
