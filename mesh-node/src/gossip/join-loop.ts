import { setTimeout as sleep } from 'node:timers/promises'
import { formatHostPort, type HostPort } from '@pgmesh/protocol'
import type { Logger } from '../log.js'

export interface JoinLoopOptions {
  readonly seeds: readonly HostPort[]
  readonly initialMs: number
  readonly maxMs: number
  readonly dialTimeoutMs: number
  readonly dialSeed: (seed: HostPort, signal: AbortSignal) => Promise<string>
  readonly isConnected: (peerId: string) => boolean
  readonly onJoined: (seed: HostPort, peerId: string) => void
  readonly log: Logger
  readonly random?: () => number
  /** waits `ms` or rejects when `signal` aborts (the node's clock; real timers when absent) */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

/** Exponential backoff with full jitter in [delay/2, delay], capped at `maxMs`. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30))
  return Math.round(ceiling / 2 + (ceiling / 2) * random())
}

/**
 * Keeps this node attached to the mesh through its seeds: dials them in turn until one answers,
 * and dials again whenever no seed connection is up (a seed restarted, a node started before
 * its seed). Runs until `signal` aborts; never throws.
 */
export async function runJoinLoop(o: JoinLoopOptions, signal: AbortSignal): Promise<void> {
  if (o.seeds.length === 0) return
  const random = o.random ?? Math.random
  const wait = o.sleep ?? ((ms: number, signal: AbortSignal) => sleep(ms, undefined, { signal }))
  const seedPeers = new Set<string>()
  let attempt = 0
  let next = 0
  while (!signal.aborted) {
    let delay: number
    if ([...seedPeers].some((p) => o.isConnected(p))) {
      attempt = 0
      delay = Math.max(o.initialMs, 250)
    } else {
      const seed = o.seeds[next++ % o.seeds.length]!
      try {
        const peerId = await o.dialSeed(seed, AbortSignal.any([signal, AbortSignal.timeout(o.dialTimeoutMs)]))
        seedPeers.add(peerId)
        o.onJoined(seed, peerId)
        attempt = 0
        delay = o.initialMs
      } catch (e) {
        if (signal.aborted) return
        const level = attempt === 0 || attempt % 20 === 0 ? 'warn' : 'debug'
        o.log[level](
          { seed: formatHostPort(seed), attempt, err: e instanceof Error ? e.message : String(e) },
          'seed not reachable; retrying',
        )
        attempt++
        delay = backoffMs(attempt, o.initialMs, o.maxMs, random)
      }
    }
    try {
      await wait(delay, signal)
    } catch {
      return
    }
  }
}
