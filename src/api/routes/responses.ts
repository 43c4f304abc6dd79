/**
 * OpenAPI response entries shared by the route files: a JSON body with its
 * schema, and the error answers every protected route can give, so each
 * route states only what is particular to it.
 */
import type { z } from "@hono/zod-openapi";
import { ErrorSchema } from "../schemas.js";

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** The refusals of a key route; `overrides` rewords the ones a route means differently. */
export function keyRouteErrors(overrides: { 400?: string; 409?: string } = {}) {
  return {
    400: json(ErrorSchema, overrides[400] ?? "Invalid request"),
    401: json(ErrorSchema, "No valid token"),
    403: json(ErrorSchema, "Not allowed"),
    404: json(ErrorSchema, "No such key"),
    409: json(ErrorSchema, overrides[409] ?? "Conflict with the key's state"),
    503: json(ErrorSchema, "Sealed or audit unavailable"),
  };
}
