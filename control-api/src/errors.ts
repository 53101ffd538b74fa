import type { ApiError, ErrorCode, Issue } from '@pgmesh/protocol'

export function apiError(code: ErrorCode, message: string, issues?: readonly Issue[]): ApiError {
  return { error: issues === undefined ? { code, message } : { code, message, issues: [...issues] } }
}
