import type { ApiError, ErrorCode, Issue, PgmeshError } from '@pgmesh/protocol'
import type { Context } from 'hono'

export function apiError(code: ErrorCode, message: string, issues?: readonly Issue[]): ApiError {
  return { error: issues === undefined ? { code, message } : { code, message, issues: [...issues] } }
}

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 500 | 502 | 503 | 504

/** The HTTP status of a refused action, by code; a code not listed here is a 400. */
const STATUS: Partial<Record<ErrorCode, ErrorStatus>> = {
  API_NOT_FOUND: 404,
  API_UNAUTHORIZED: 401,
  API_WRITES_DISABLED: 403,
  API_UNAVAILABLE: 503,
  API_INTERNAL: 500,
  MEMBER_NOT_FOUND: 404,
  MEMBER_NOT_DEAD: 409,
  MEMBER_IS_SELF: 409,
  CONFIG_CONFLICT: 409,
  MAINTENANCE_STATE_INVALID: 500,
  CONFIG_STATE_INVALID: 500,
  CP_NODE_UNREACHABLE: 502,
  CP_NODE_TIMEOUT: 504,
  CP_NODE_BAD_ANSWER: 502,
  CP_NO_LIVE_NODE: 503,
  CP_NODE_REQUIRED: 400,
}

export function statusOf(code: ErrorCode): ErrorStatus {
  return STATUS[code] ?? 400
}

/** A refused action as its JSON error, with the status its code stands for. */
export function refused(c: Context, e: PgmeshError): Response {
  return c.json(apiError(e.code, e.message, e.issues), statusOf(e.code))
}

/**
 * Thrown by a source that cannot answer a read (the control plane with no node reachable):
 * the API answers with its code and status instead of a generic 500.
 */
export class SourceError extends Error {
  constructor(readonly error: PgmeshError) {
    super(error.message)
    this.name = 'SourceError'
  }
}
