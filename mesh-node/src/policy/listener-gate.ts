/**
 * The thin adapter between a listener's sockets and its {@link ListenerPolicy}: at accept it reads
 * the PROXY header from a trusted peer (and nothing from anyone else), asks the policy, and either
 * hands the connection on, paused, or refuses it (a RST, or an ErrorResponse on PostgreSQL
 * listeners). An admitted connection's slot is released when its socket closes.
 */
import type { Socket } from 'node:net'
import { canonicalIp, type PolicyRefusal } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import type { ListenerPolicy } from './listener-policy.js'
import {
  decodeProxyHeader,
  looksLikeProxyHeader,
  PROXY_V2_MAX,
  type ProxyAddresses,
} from './proxy-protocol.js'
import { pgErrorResponse } from './refusal.js'

export interface AdmittedClient {
  /** the real client's address and the address it connected to (from the PROXY header when one was read) */
  readonly origin: ProxyAddresses
  /** its first bytes must be checked for a forged PROXY header (the listener accepts PROXY, but not from this peer) */
  readonly sniff: boolean
}

/** The client's addresses as a PROXY header to a backend states them. */
export function backendOrigin(admitted: AdmittedClient | null, client: Socket): ProxyAddresses | null {
  if (admitted !== null) return admitted.origin
  const source = canonicalIp(client.remoteAddress ?? '')
  const dest = canonicalIp(client.localAddress ?? '')
  if (source === null || dest === null) return null
  return { source, sourcePort: client.remotePort ?? 0, dest, destPort: client.localPort ?? 0 }
}

export interface GateOptions {
  readonly listener: string
  /** PostgreSQL listener: a refused client gets an ErrorResponse instead of a RST */
  readonly postgres: boolean
  readonly mono: () => number
  readonly logger: Logger
}

/** A refused PostgreSQL client has this long to read its ErrorResponse before the socket is destroyed. */
const REFUSED_LINGER_MS = 2_000
/** At most one refusal log line per listener this often (a flood must not flood the log). */
const REFUSAL_LOG_MS = 1_000

export class ListenerGate {
  readonly #log: Logger
  #lastLog = Number.NEGATIVE_INFINITY
  #unlogged = 0

  constructor(
    readonly policy: ListenerPolicy,
    private readonly options: GateOptions,
  ) {
    this.#log = options.logger.child({ component: 'policy', listener: options.listener })
  }

  /** Decides on a new client (paused, nothing read); `admitted` runs once it may go on. */
  accept(client: Socket, admitted: (a: AdmittedClient) => void): void {
    const own: ProxyAddresses = {
      source: canonicalIp(client.remoteAddress ?? '') ?? '',
      sourcePort: client.remotePort ?? 0,
      dest: canonicalIp(client.localAddress ?? '') ?? '',
      destPort: client.localPort ?? 0,
    }
    const expect = this.policy.proxyExpectation(own.source)
    if (expect === 'none') {
      this.#decide(client, own, this.policy.config.proxyProtocol !== undefined, admitted)
      return
    }
    let buf: Buffer = Buffer.alloc(0)
    const timeoutMs = this.policy.config.proxyProtocol?.headerTimeoutMs ?? 3_000
    const done = () => {
      clearTimeout(timer)
      client.off('data', onData)
      client.off('close', onClose)
      client.pause()
    }
    const onClose = () => clearTimeout(timer)
    const timer = setTimeout(() => {
      done()
      if (expect === 'required') this.#refuse(client, own.source, 'proxyMissing', 'no PROXY header in time')
      else {
        if (buf.length > 0) client.unshift(buf)
        this.#decide(client, own, false, admitted)
      }
    }, timeoutMs)
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const d = decodeProxyHeader(buf.subarray(0, PROXY_V2_MAX))
      if (d.state === 'partial') return
      done()
      if (d.state === 'invalid') return this.#refuse(client, own.source, 'proxyInvalid', d.why)
      if (d.state === 'absent') {
        if (expect === 'required') return this.#refuse(client, own.source, 'proxyMissing', 'no PROXY header')
        client.unshift(buf)
        return this.#decide(client, own, false, admitted)
      }
      const rest = buf.subarray(d.length)
      if (rest.length > 0) client.unshift(rest)
      this.#decide(client, d.addresses ?? own, false, admitted)
    }
    client.on('data', onData)
    client.once('close', onClose)
    client.resume()
  }

  /**
   * A client's first bytes on a listener that accepts PROXY headers, from a peer it does not
   * trust: true (counted) when they are a PROXY header, and the connection must be refused.
   */
  forged(chunk: Buffer, client: Socket): boolean {
    if (!looksLikeProxyHeader(chunk)) return false
    this.policy.refuse('proxyUntrusted')
    this.#logRefusal(
      canonicalIp(client.remoteAddress ?? '') ?? '',
      'proxyUntrusted',
      'PROXY header from an untrusted source',
    )
    return true
  }

  /** The backend for `source`: its sticky one while it is a candidate, else `choose()`'s. */
  pick<C extends { readonly id: string }>(
    source: string,
    candidates: readonly C[],
    choose: () => C | null,
  ): C | null {
    return this.policy.pick(source, candidates, this.options.mono(), choose)
  }

  #decide(
    client: Socket,
    origin: ProxyAddresses,
    sniff: boolean,
    admitted: (a: AdmittedClient) => void,
  ): void {
    if (client.destroyed) return
    const v = this.policy.admit(origin.source, this.options.mono())
    if (!v.ok) {
      this.#refuse(client, origin.source, v.reason, v.detail, true)
      return
    }
    const { source, slot } = v
    client.once('close', () => this.policy.release(slot))
    admitted({ origin: { ...origin, source }, sniff })
  }

  /** `counted`: the policy already counted it */
  #refuse(client: Socket, source: string, reason: PolicyRefusal, detail: string, counted = false): void {
    if (!counted) this.policy.refuse(reason)
    this.#logRefusal(source, reason, detail)
    if (client.destroyed) return
    if (!this.options.postgres) {
      client.resetAndDestroy()
      return
    }
    const message = `pgmesh: connection from ${source} refused by listener "${this.options.listener}": ${detail}`
    client.on('data', () => undefined)
    client.once('end', () => client.destroy())
    setTimeout(() => client.destroy(), REFUSED_LINGER_MS).unref()
    client.end(pgErrorResponse(reason, message))
    client.resume()
  }

  #logRefusal(source: string, reason: PolicyRefusal, detail: string): void {
    const now = this.options.mono()
    if (now - this.#lastLog < REFUSAL_LOG_MS) {
      this.#unlogged++
      return
    }
    this.#log.info(
      { client: source, reason, detail, alsoRefused: this.#unlogged },
      `refused ${source}: ${detail}`,
    )
    this.#lastLog = now
    this.#unlogged = 0
  }
}
