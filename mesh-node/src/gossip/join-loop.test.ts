import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { HostPort } from '@pgmesh/protocol'
import { pino } from 'pino'
import { backoffMs, runJoinLoop } from './join-loop.js'

describe('join loop', () => {
  it('backs off exponentially with jitter, capped', () => {
    assert.equal(
      backoffMs(1, 100, 5000, () => 1),
      200,
    )
    assert.equal(
      backoffMs(1, 100, 5000, () => 0),
      100,
    )
    assert.equal(
      backoffMs(3, 100, 5000, () => 1),
      800,
    )
    assert.equal(
      backoffMs(40, 100, 5000, () => 1),
      5000,
    )
  })

  it('retries until a seed answers, tries seeds in turn, and redials after the seed is lost', async () => {
    const dialled: string[] = []
    let connected = false
    let failuresLeft = 3
    const joined: string[] = []
    const ac = new AbortController()
    const loop = runJoinLoop(
      {
        seeds: [
          { host: 'a', port: 1 },
          { host: 'b', port: 2 },
        ],
        initialMs: 10,
        maxMs: 20,
        dialTimeoutMs: 100,
        random: () => 0.5,
        log: pino({ level: 'silent' }),
        dialSeed: async (seed: HostPort) => {
          dialled.push(seed.host)
          if (failuresLeft-- > 0) throw new Error('ECONNREFUSED')
          connected = true
          return 'peer-x'
        },
        isConnected: () => connected,
        onJoined: (seed) => joined.push(seed.host),
      },
      ac.signal,
    )
    const until = async (cond: () => boolean) => {
      const deadline = Date.now() + 3000
      while (!cond()) {
        if (Date.now() > deadline) throw new Error('condition not reached')
        await new Promise((r) => setTimeout(r, 5))
      }
    }
    await until(() => joined.length === 1)
    assert.deepEqual(dialled.slice(0, 4), ['a', 'b', 'a', 'b'])
    const before = dialled.length
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(dialled.length, before, 'no dialling while the seed connection is up')
    connected = false
    await until(() => joined.length === 2)
    ac.abort()
    await loop
  })

  it('returns at once with no seeds', async () => {
    await runJoinLoop(
      {
        seeds: [],
        initialMs: 10,
        maxMs: 10,
        dialTimeoutMs: 10,
        log: pino({ level: 'silent' }),
        dialSeed: async () => 'x',
        isConnected: () => false,
        onJoined: () => undefined,
      },
      new AbortController().signal,
    )
  })
})
