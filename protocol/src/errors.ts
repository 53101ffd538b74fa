/**
 * Errors are values: every failure a caller can meet carries a stable `code` that is
 * documented in docs/errors.md, so an operator can look it up.
 */
export const ERROR_CODES = [
  'ADDRESS_INVALID',
  'CONFIG_NOT_FOUND',
  'CONFIG_PARSE',
  'CONFIG_INVALID',
  'IMPORT_READ',
  'IMPORT_PARSE',
  'IMPORT_INVALID',
  'SECRET_MISSING',
  'SECRET_INVALID',
  'TOKENS_INVALID',
  'NODE_KEY_INVALID',
  'GOSSIP_TOO_LARGE',
  'GOSSIP_TOO_DEEP',
  'GOSSIP_NOT_UTF8',
  'GOSSIP_NOT_JSON',
  'GOSSIP_UNSUPPORTED_VERSION',
  'GOSSIP_INVALID',
  'GOSSIP_WRONG_CLUSTER',
  'GOSSIP_PEER_MISMATCH',
  'GOSSIP_UNKNOWN_PEER',
  'GOSSIP_ID_CLAIMED',
  'GOSSIP_HANDLER_FAILED',
  'PEERS_STATE_INVALID',
  'CONFIG_APPLY_FAILED',
  'FASTPATH_FAILED',
  'FASTPATH_UNAVAILABLE',
  'GOSSIP_MEMBER_REFUSED',
  'ELECTION_FRAME_REFUSED',
  'ELECTION_QUEUE_FULL',
  'PROCESS_FATAL',
  'ELECTION_STATE_INVALID',
  'ELECTION_STREAM_ERROR',
  'GOSSIP_MUXER_UNTUNED',
  'PROXY_READS_UNTUNED',
  'VIP_COMMAND_FAILED',
  'VIP_SYN_BLOCK_FAILED',
  'VIP_RECONFIGURE_FAILED',
  'API_NOT_FOUND',
  'API_BAD_REQUEST',
  'API_UNAVAILABLE',
  'API_INTERNAL',
  'API_UNAUTHORIZED',
  'API_WRITES_DISABLED',
  'MEMBER_NOT_FOUND',
  'MEMBER_NOT_DEAD',
  'MEMBER_IS_SELF',
  'MAINTENANCE_STATE_INVALID',
  'CONFIG_CONFLICT',
  'CONFIG_STATE_INVALID',
  'GOSSIP_CONFIG_INVALID',
  'CP_NODE_UNREACHABLE',
  'CP_NODE_TIMEOUT',
  'CP_NODE_BAD_ANSWER',
  'CP_NO_LIVE_NODE',
  'CP_NODE_REQUIRED',
  'CP_CONFIG_INVALID',
  'CONFIG_NOT_ALLOWED',
  'COMMAND_NOT_ALLOWED',
  'API_HOST_NOT_ALLOWED',
  'API_READS_UNPROTECTED',
  'FILE_MODE_UNSAFE',
  'TLS_MATERIAL_INVALID',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export interface Issue {
  /** dotted path into the offending document, e.g. `node.gossip.listen`; empty for the whole document */
  readonly path: string
  readonly message: string
}

export interface PgmeshError {
  readonly code: ErrorCode
  readonly message: string
  readonly issues?: readonly Issue[]
}

export type Result<T, E = PgmeshError> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: E }

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value })
export const err = <E = PgmeshError>(error: E): Result<never, E> => ({ ok: false, error })

export function pgmeshError(code: ErrorCode, message: string, issues?: readonly Issue[]): PgmeshError {
  return issues === undefined ? { code, message } : { code, message, issues }
}

/** One line per problem, for CLI output and logs. */
export function formatError(error: PgmeshError): string {
  const head = `${error.code}: ${error.message}`
  if (error.issues === undefined || error.issues.length === 0) return head
  return [head, ...error.issues.map((i) => `  - ${i.path === '' ? '(root)' : i.path}: ${i.message}`)].join(
    '\n',
  )
}
