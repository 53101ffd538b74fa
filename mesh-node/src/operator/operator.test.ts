import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { pino } from 'pino'
import { initialMembership, type MembershipState, membershipStep } from '../membership/membership.js'
import { TEST_TIMINGS, testHeartbeat } from '../testing/heartbeats.js'
import {
  fileMaintenanceStore,
  Maintenance,
  type MaintenanceStore,
  memoryMaintenanceStore,
} from './maintenance.js'
import { checkRemovable } from './remove-member.js'

const log = pino({ level: 'silent' })
const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

function rig(store: MaintenanceStore = memoryMaintenanceStore()) {
  const calls: string[] = []
  let changes = 0
  const m = new Maintenance({
    node: 'n1',
    store,
    setEligible: async (eligible) => {
      calls.push(`eligible=${eligible}`)
    },
    proxy: {
      pause: async () => {
        calls.push('pause')
      },
      resume: async () => {
        calls.push('resume')
        return []
      },
      activeSessions: () => 2,
    },
    wall: () => 1_000_000,
    logger: log,
    onChange: () => {
      changes++
    },
  })
  return { m, calls, changes: () => changes }
}

describe('maintenance', () => {
  it('hands MASTER over before closing the listeners, and opens them before it may take MASTER again', async () => {
    const store = memoryMaintenanceStore()
    const { m, calls, changes } = rig(store)
    const on = await m.set(true, 'kernel upgrade')
    assert.ok(on.ok)
    assert.deepEqual(on.value, {
      node: 'n1',
      enabled: true,
      reason: 'kernel upgrade',
      since: new Date(1_000_000).toISOString(),
      activeSessions: 2,
    })
    assert.deepEqual(calls, ['eligible=false', 'pause'])
    assert.deepEqual(store.saved, { reason: 'kernel upgrade', since: 1_000_000 })
    assert.equal(changes(), 1)

    const again = await m.set(true, 'still upgrading')
    assert.ok(again.ok && again.value.reason === 'still upgrading')
    assert.deepEqual(calls, ['eligible=false', 'pause'], 'a new reason changes nothing else')

    const off = await m.set(false, undefined)
    assert.ok(off.ok && !off.value.enabled && off.value.since === null)
    assert.deepEqual(calls, ['eligible=false', 'pause', 'resume', 'eligible=true'])
    assert.equal(store.saved, null)
    const noop = await m.set(false, undefined)
    assert.ok(noop.ok)
    assert.equal(calls.length, 4)
  })

  it('resumes a persisted maintenance at start', async () => {
    const { m, calls } = rig(memoryMaintenanceStore({ reason: null, since: 5 }))
    await m.load()
    assert.deepEqual(m.state, { reason: null, since: 5 })
    assert.deepEqual(calls, ['pause', 'eligible=false'])
  })

  it('keeps the state in the data dir, removes it when maintenance ends, refuses a damaged file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgmesh-maint-'))
    dirs.push(dir)
    const store = fileMaintenanceStore(dir)
    const empty = await store.load()
    assert.ok(empty.ok && empty.value === null)
    await store.save({ reason: 'disk swap', since: 42 })
    assert.equal((await stat(join(dir, 'maintenance.json'))).mode & 0o777, 0o600)
    const loaded = await store.load()
    assert.ok(loaded.ok)
    assert.deepEqual(loaded.value, { reason: 'disk swap', since: 42 })
    await store.save(null)
    await assert.rejects(readFile(join(dir, 'maintenance.json')))
    await store.save(null)
    await writeFile(join(dir, 'maintenance.json'), '{"reason": 3}')
    const bad = await store.load()
    assert.ok(!bad.ok && bad.error.code === 'MAINTENANCE_STATE_INVALID')
    await assert.rejects(rig(store).m.load(), /MAINTENANCE_STATE_INVALID/)
  })
})

const T = TEST_TIMINGS
const hb = (node: string, incarnation: number) => testHeartbeat(node, { incarnation })

describe('maintenance: handing the VIP over', () => {
  function vipRig(opts: { quiesceFails?: boolean } = {}) {
    const calls: string[] = []
    const m = new Maintenance({
      node: 'n1',
      store: memoryMaintenanceStore(),
      setEligible: async (eligible) => {
        calls.push(`eligible=${eligible}`)
      },
      proxy: {
        pause: async () => void calls.push('pause'),
        resume: async () => {
          calls.push('resume')
          return []
        },
        activeSessions: () => 0,
      },
      vip: {
        quiesce: async () => {
          calls.push('quiesce')
          if (opts.quiesceFails) throw new Error('nft exploded')
        },
        unquiesce: async () => void calls.push('unquiesce'),
      },
      wall: () => 1_000_000,
      logger: log,
      onChange: () => undefined,
    })
    return { m, calls }
  }

  it('quiesces the VIP before giving MASTER up, lifts the block after, and not when leaving maintenance', async () => {
    const { m, calls } = vipRig()
    assert.ok((await m.set(true, 'r')).ok)
    assert.deepEqual(calls, ['quiesce', 'eligible=false', 'unquiesce', 'pause'])
    assert.ok((await m.set(false, undefined)).ok)
    assert.deepEqual(calls.slice(4), ['resume', 'eligible=true'])
  })

  it('a quiesce that fails does not hold the hand-over up', async () => {
    const { m, calls } = vipRig({ quiesceFails: true })
    assert.ok((await m.set(true, 'r')).ok)
    assert.deepEqual(calls, ['quiesce', 'eligible=false', 'unquiesce', 'pause'])
  })
})

describe('checkRemovable', () => {
  let s: MembershipState = initialMembership('self')
  for (const [now, e] of [
    [0, { type: 'heartbeat', msg: hb('dead', 4) }],
    [1100, { type: 'heartbeat', msg: hb('alive', 2) }],
    [1100, { type: 'heartbeat', msg: hb('suspect', 2) }],
    [1100, { type: 'tick' }],
    [1450, { type: 'heartbeat', msg: hb('alive', 2) }],
    [1450, { type: 'tick' }],
    [1450, { type: 'remove', id: 'gone', incarnation: 9 }],
  ] as const) {
    s = membershipStep(s, e, now, T).state
  }

  it('refuses self, live and suspect members, and unknown ids', () => {
    const code = (id: string) => {
      const r = checkRemovable(id, 'self', s, ['founder'])
      return r.ok ? 'ok' : r.error.code
    }
    assert.equal(code('self'), 'MEMBER_IS_SELF')
    assert.equal(code('alive'), 'MEMBER_NOT_DEAD')
    assert.equal(code('suspect'), 'MEMBER_NOT_DEAD')
    assert.equal(code('nobody'), 'MEMBER_NOT_FOUND')
  })

  it('allows a dead member, a listed one never heard from, and an already removed one', () => {
    assert.deepEqual(checkRemovable('dead', 'self', s, []), { ok: true, value: { incarnation: 4 } })
    assert.deepEqual(checkRemovable('founder', 'self', s, ['founder']), {
      ok: true,
      value: { incarnation: 0 },
    })
    assert.deepEqual(checkRemovable('gone', 'self', s, []), { ok: true, value: { incarnation: 9 } })
  })
})
