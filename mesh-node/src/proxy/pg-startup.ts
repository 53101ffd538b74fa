/**
 * PostgreSQL session start, as seen by a proxy that forwards the client's first bytes and reads the
 * server's first answer before committing to that server: a server that answers 57P03 (shutting
 * down, starting up, not yet accepting) can be dropped and the same bytes replayed to another one,
 * the client none the wiser. Once the server answers anything else, or the stream turns opaque (TLS
 * or GSSAPI encryption accepted), the proxy commits and stops looking.
 *
 * Pure bookkeeping: it never holds a socket, and never logs (startup packets carry user names).
 */

const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const N = 0x4e // 'N': encryption refused, go on in plain text
const ERROR_RESPONSE = 0x45 // 'E'
const CANNOT_CONNECT_NOW = '57P03'

export const STARTUP_PEEK_LIMIT = 10 * 1024

/** What the listener does after server bytes: forward `toClient` (if any), then keep inspecting, commit or reject. */
export interface ServerStep {
  readonly state: 'inspect' | 'commit' | 'reject'
  readonly toClient: Buffer | null
}

const EMPTY = Buffer.alloc(0)

export class StartupPeek {
  /** client bytes the current server was sent whose answer the client has not seen: the replay */
  #unanswered: Buffer = EMPTY
  /** server bytes held back until they are judged */
  #held: Buffer = EMPTY

  constructor(private readonly limit = STARTUP_PEEK_LIMIT) {}

  /** Client bytes, forwarded to the server as they come; 'commit' when there is nothing to inspect. */
  client(chunk: Buffer): 'inspect' | 'commit' {
    this.#unanswered = this.#unanswered.length === 0 ? chunk : Buffer.concat([this.#unanswered, chunk])
    if (this.#unanswered.length > this.limit) return 'commit'
    return this.#request() === 'opaque' ? 'commit' : 'inspect'
  }

  /** Server bytes: what to pass on, and whether to go on looking, commit to this server, or drop it. */
  server(chunk: Buffer): ServerStep {
    this.#held = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk])
    let toClient: Buffer | null = null
    for (;;) {
      const request = this.#request()
      if (request === 'negotiation' && this.#held[0] === N) {
        // plain text it is: the client gets its 'N' and sends the next packet, which a next server is sent alone
        toClient = this.#held.subarray(0, 1)
        this.#held = this.#held.subarray(1)
        this.#unanswered = this.#unanswered.subarray(8)
        if (this.#held.length === 0) return { state: 'inspect', toClient }
        continue
      }
      if (request !== 'startup' || this.#held[0] !== ERROR_RESPONSE) return this.#commit(toClient)
      if (this.#held.length < 5) return { state: 'inspect', toClient }
      const length = this.#held.readUInt32BE(1)
      if (length > this.limit) return this.#commit(toClient)
      if (this.#held.length < 1 + length) return { state: 'inspect', toClient }
      if (sqlState(this.#held.subarray(5, 1 + length)) !== CANNOT_CONNECT_NOW) return this.#commit(toClient)
      return { state: 'reject', toClient }
    }
  }

  /**
   * The server closed before answering: true when it had a whole packet to answer, so it refused
   * the session (a postmaster going down); false when the client had not finished asking.
   */
  awaitingReply(): boolean {
    const request = this.#request()
    if (request === 'negotiation') return true
    return request === 'startup' && this.#unanswered.length >= this.#unanswered.readUInt32BE(0)
  }

  /** Inspection stops (the client side decided): the server bytes held back so far, for the client. */
  release(): Buffer {
    const held = this.#held
    this.#held = EMPTY
    return held
  }

  /** Starts over with another server: the bytes to send it first. */
  replay(): Buffer {
    this.#held = EMPTY
    return this.#unanswered
  }

  #commit(toClient: Buffer | null): ServerStep {
    const rest = this.#held
    this.#held = EMPTY
    if (toClient === null) return { state: 'commit', toClient: rest }
    return { state: 'commit', toClient: rest.length === 0 ? toClient : Buffer.concat([toClient, rest]) }
  }

  /** The client packet the server is answering: incomplete header, an encryption request, a startup packet, or something to pass through blind. */
  #request(): 'partial' | 'negotiation' | 'startup' | 'opaque' {
    const b = this.#unanswered
    if (b.length < 8) return 'partial'
    const length = b.readUInt32BE(0)
    const code = b.readUInt32BE(4)
    if ((code === SSL_REQUEST || code === GSSENC_REQUEST) && length === 8) return 'negotiation'
    if (code === CANCEL_REQUEST || length < 8 || length > this.limit) return 'opaque'
    return 'startup'
  }
}

/** The SQLSTATE ('C' field) of an ErrorResponse body, or null. */
function sqlState(fields: Buffer): string | null {
  let i = 0
  while (i < fields.length && fields[i] !== 0) {
    const type = fields[i]!
    const end = fields.indexOf(0, i + 1)
    if (end < 0) return null
    if (type === 0x43) return fields.toString('latin1', i + 1, end)
    i = end + 1
  }
  return null
}
