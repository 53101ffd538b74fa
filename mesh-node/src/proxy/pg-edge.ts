import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { type SecureContext, TLSSocket } from 'node:tls'
import {
  classifyFirstPacket,
  errorResponse,
  type FirstPacket,
  REFUSAL,
  TLS_HANDSHAKE_BYTE,
  withClientAddress,
} from './pg-wire.js'

/** What the edge needs from the listener: its TLS (if it terminates) and its options. */
export interface EdgeOptions {
  readonly listener: string
  /** the context clients get now; null = TLS is not terminated here (passthrough) */
  readonly context: () => SecureContext | null
  /** `terminate`: refuse a client that does not ask for TLS */
  readonly requireTls: boolean
  /** PostgreSQL protocol (false: a `servers` listener, TLS from the first byte) */
  readonly postgres: boolean
  readonly applicationNameAddHost: boolean
  readonly handshakeTimeoutMs: number
}

/** Why a connection ended at the edge: counted per listener. */
export type EdgeDrop = 'bad-startup' | 'tls-failed' | 'handshake-timeout' | 'plain-refused' | 'closed'

export type EdgeResult =
  /** a session: `client` (the raw socket or TLS over it) with its first bytes back in front, paused */
  | { readonly kind: 'session'; readonly client: Socket; readonly tls: boolean }
  | { readonly kind: 'cancel'; readonly packet: Buffer }
  | { readonly kind: 'drop'; readonly why: EdgeDrop; readonly detail: string }

const S = Buffer.from('S')
const N = Buffer.from('N')

/**
 * The raw socket with bytes already read from it put back in front, as a stream TLS can wrap
 * (TLSSocket over a net.Socket would read its handle directly and miss them).
 */
class Prefixed extends Duplex {
  constructor(
    private readonly raw: Socket,
    prefix: Buffer,
  ) {
    super({ allowHalfOpen: true })
    if (prefix.length > 0) this.push(prefix)
    raw.on('data', (d: Buffer) => {
      if (!this.push(d)) raw.pause()
    })
    raw.on('end', () => this.push(null))
    raw.on('close', () => this.destroy())
    raw.on('error', (e) => this.destroy(e))
  }
  override _read(): void {
    this.raw.resume()
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.raw.write(chunk, done)
  }
  override _final(done: () => void): void {
    this.raw.end()
    done()
  }
  override _destroy(e: Error | null, done: (e?: Error | null) => void): void {
    this.raw.destroy()
    done(e)
  }
}

/** Reads from `s` until `enough` says what the bytes are; resolves null when `s` closes first. */
function readUntil<T>(
  s: Socket,
  enough: (b: Buffer) => T | null,
): Promise<{ value: T; rest: Buffer } | { value: null; rest: Buffer }> {
  return new Promise((done) => {
    let got: Buffer = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      got = got.length === 0 ? d : Buffer.concat([got, d])
      const v = enough(got)
      if (v === null) return
      cleanup()
      s.pause()
      done({ value: v, rest: got })
    }
    const onGone = () => {
      cleanup()
      done({ value: null, rest: got })
    }
    const cleanup = () => {
      s.off('data', onData)
      s.off('end', onGone)
      s.off('close', onGone)
    }
    s.on('data', onData)
    s.once('end', onGone)
    s.once('close', onGone)
    s.resume()
  })
}

const firstPacket = (allowDirectTls: boolean) => (b: Buffer) => {
  const p = classifyFirstPacket(b, allowDirectTls)
  return p.kind === 'partial' ? null : p
}

/** Runs the server side of a TLS handshake over `stream`; the TLS socket, or why it failed. */
function handshake(
  stream: Socket | Duplex,
  context: SecureContext,
  alpnRequired: boolean,
): Promise<TLSSocket | string> {
  return new Promise((done) => {
    const t = new TLSSocket(stream as Socket, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: ['postgresql'],
    })
    let settled = false
    const fail = (why: string) => {
      if (settled) return
      settled = true
      t.destroy()
      done(why)
    }
    t.on('error', (e) => fail(e.message))
    t.once('close', () => fail('closed during the handshake'))
    t.once('secure', () => {
      if (settled) return
      settled = true
      // PostgreSQL 17 refuses direct TLS without ALPN: a client of another protocol must not get in
      if (alpnRequired && t.alpnProtocol !== 'postgresql') {
        t.destroy()
        done('direct TLS without ALPN "postgresql"')
        return
      }
      t.pause()
      done(t)
    })
  })
}

/**
 * The start of a connection at a listener that terminates TLS or rewrites the startup packet:
 * answers SSLRequest / GSSENCRequest, runs the TLS handshake (after SSLRequest, or at once for
 * direct TLS and `servers` listeners), reads the startup packet and puts it (rewritten when asked)
 * back in front of the stream for the splice. Everything a client sends that is not what PostgreSQL
 * accepts here is a counted drop; a plain client at a TLS-only listener gets an ErrorResponse.
 * Bounded by `handshakeTimeoutMs` from the accept.
 */
export async function negotiateEdge(raw: Socket, o: EdgeOptions): Promise<EdgeResult> {
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    raw.destroy()
  }, o.handshakeTimeoutMs)
  try {
    const r = await negotiate(raw, o)
    if (timedOut)
      return {
        kind: 'drop',
        why: 'handshake-timeout',
        detail: `no startup within ${o.handshakeTimeoutMs} ms`,
      }
    if (r.kind === 'drop') raw.destroy()
    return r
  } finally {
    clearTimeout(timer)
  }
}

async function negotiate(raw: Socket, o: EdgeOptions): Promise<EdgeResult> {
  const closed: EdgeResult = { kind: 'drop', why: 'closed', detail: 'client closed during the startup' }
  const context = o.context()
  if (!o.postgres) {
    if (context === null) return { kind: 'session', client: raw, tls: false }
    const t = await handshake(raw, context, false)
    return typeof t === 'string'
      ? { kind: 'drop', why: 'tls-failed', detail: t }
      : { kind: 'session', client: t, tls: true }
  }
  let stream: Socket = raw
  let tls = false
  // at most: GSSENCRequest answered N, then SSLRequest, then the startup packet
  for (let step = 0; step < 3; step++) {
    const got = await readUntil<FirstPacket>(stream, firstPacket(context !== null && !tls))
    const p = got.value
    if (p === null) {
      if (got.rest.length === 0) return closed
      return { kind: 'drop', why: 'bad-startup', detail: `truncated packet (${got.rest.length} bytes)` }
    }
    switch (p.kind) {
      case 'partial':
        return closed
      case 'invalid':
        stream.end(errorResponse(REFUSAL.protocol, `pgmesh: invalid startup packet (${p.reason})`))
        return { kind: 'drop', why: 'bad-startup', detail: p.reason }
      case 'gssenc-request':
        if (got.rest.length > 8)
          return { kind: 'drop', why: 'bad-startup', detail: 'data after GSSENCRequest' }
        stream.write(N)
        continue
      case 'ssl-request': {
        if (got.rest.length > 8 && context === null)
          return { kind: 'drop', why: 'bad-startup', detail: 'data after SSLRequest' }
        if (tls) return { kind: 'drop', why: 'bad-startup', detail: 'SSLRequest inside TLS' }
        if (context === null) {
          // passthrough: the database answers it; nothing more to see in clear if it says S
          stream.unshift(got.rest)
          return { kind: 'session', client: stream, tls }
        }
        stream.write(S)
        const extra = got.rest.subarray(8)
        const t = await handshake(
          extra.length > 0 ? (new Prefixed(raw, extra) as unknown as Socket) : raw,
          context,
          false,
        )
        if (typeof t === 'string') return { kind: 'drop', why: 'tls-failed', detail: t }
        stream = t
        tls = true
        continue
      }
      case 'direct-tls': {
        const t = await handshake(new Prefixed(raw, got.rest), context!, true)
        if (typeof t === 'string') return { kind: 'drop', why: 'tls-failed', detail: t }
        stream = t
        tls = true
        continue
      }
      case 'cancel':
        return { kind: 'cancel', packet: p.packet }
      case 'startup': {
        if (context !== null && !tls && o.requireTls) {
          stream.end(
            errorResponse(
              REFUSAL.tlsRequired,
              `pgmesh: listener "${o.listener}" requires TLS (connect with sslmode=require or stronger)`,
            ),
          )
          return { kind: 'drop', why: 'plain-refused', detail: 'plain client at a TLS-only listener' }
        }
        const packet = o.applicationNameAddHost
          ? withClientAddress(p.packet, clientHost(raw), raw.remotePort ?? 0)
          : p.packet
        stream.unshift(Buffer.concat([packet, got.rest.subarray(p.packet.length)]))
        return { kind: 'session', client: stream, tls }
      }
    }
  }
  return { kind: 'drop', why: 'bad-startup', detail: 'too many negotiation requests' }
}

function clientHost(s: Socket): string {
  const a = s.remoteAddress ?? ''
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a)
  return m !== null ? m[1]! : a
}

export { TLS_HANDSHAKE_BYTE }
