import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type ClusterEvent, ClusterEventSchema, EventsViewSchema } from '@pgmesh/protocol'
import { EventRing } from './event-ring.js'
import { diffViews, type MemberSnapshot, type ViewSnapshot } from './view-diff.js'
import { ViewEventLog } from './view-event-log.js'

const alive: MemberSnapshot = {
  state: 'alive',
  effectivePriority: 100,
  eligible: true,
  failingChecks: [],
  maintenance: null,
}

function view(
  at: number,
  master: string | null,
  members: Record<string, Partial<MemberSnapshot>>,
  extra: Partial<ViewSnapshot> = {},
): ViewSnapshot {
  return {
    at: new Date(at * 1000).toISOString(),
    master,
    term: at,
    config: null,
    members: new Map(Object.entries(members).map(([id, m]) => [id, { ...alive, ...m }])),
    removed: new Set(),
    ...extra,
  }
}

const three = { n1: { effectivePriority: 110 }, n2: { effectivePriority: 105 }, n3: {} }

function masterEvent(events: readonly unknown[]): Extract<ClusterEvent, { kind: 'master' }> {
  const e = events.find((x) => (x as ClusterEvent).kind === 'master')
  assert.ok(e, 'a master event')
  return e as Extract<ClusterEvent, { kind: 'master' }>
}

describe('diffViews', () => {
  it('the first view is a baseline, and an unchanged view gives no events', () => {
    const v = view(1, 'n1', three)
    assert.deepEqual(diffViews(null, v), [])
    assert.deepEqual(diffViews(v, view(2, 'n1', three)), [])
  })

  it('names the cause of a MASTER change from the old MASTER in the new view', () => {
    const before = view(1, 'n1', three)
    const cases: [Record<string, Partial<MemberSnapshot>>, string | null, string][] = [
      [{ ...three, n1: { state: 'dead' } }, 'n2', 'failure'],
      [{ ...three, n1: { state: 'suspect' } }, 'n2', 'failure'],
      [{ n2: three.n2, n3: {} }, 'n2', 'failure'],
      [{ ...three, n1: { state: 'left' } }, 'n2', 'stopped'],
      [{ ...three, n1: { maintenance: { reason: 'kernel' } } }, 'n2', 'maintenance'],
      [{ ...three, n1: { eligible: false, failingChecks: ['pg'] } }, 'n2', 'checks'],
      [{ ...three, n2: { effectivePriority: 120 } }, 'n2', 'preempted'],
      [three, 'n2', 'unknown'],
      [{ ...three, n1: { state: 'dead' } }, null, 'failure'],
      [three, null, 'lost'],
    ]
    for (const [members, to, cause] of cases) {
      const e = masterEvent(diffViews(before, view(2, to, members)))
      assert.equal(e.cause, cause, JSON.stringify({ members, to }))
      assert.equal(e.from, 'n1')
      assert.equal(e.to, to)
      assert.ok(e.detail.length > 0)
    }
    assert.equal(masterEvent(diffViews(view(1, null, three), view(2, 'n1', three))).cause, 'elected')
    const after = masterEvent(diffViews(view(1, null, three), view(2, 'n2', three), 'n1'))
    assert.deepEqual([after.cause, after.from], ['elected', null])
    assert.match(after.detail, /the last MASTER was n1/)
    const log = new ViewEventLog('cp')
    log.observeSnapshot(view(1, 'n1', three))
    log.observeSnapshot(view(2, null, { ...three, n1: { state: 'dead' } }))
    const [elected] = log.observeSnapshot(view(3, 'n2', { ...three, n1: { state: 'dead' } }))
    assert.ok(elected?.kind === 'master' && elected.detail.includes('the last MASTER was n1'))
    const removed = view(2, 'n2', { n2: {}, n3: {} }, { removed: new Set(['n1']) })
    assert.equal(masterEvent(diffViews(before, removed)).cause, 'removed')
  })

  it('members joining, changing state, leaving the list; maintenance on and off', () => {
    const before = view(1, 'n1', { n1: {}, n2: {} })
    const after = view(
      2,
      'n1',
      { n1: { maintenance: { reason: 'r' } }, n3: {} },
      { removed: new Set(['n2']) },
    )
    const events = diffViews(before, after)
    assert.deepEqual(
      events.map((e) => [e.kind, 'member' in e ? e.member : null, 'change' in e ? e.change : null]),
      [
        ['maintenance', 'n1', null],
        ['member', 'n3', 'joined'],
        ['member', 'n2', 'removed'],
      ],
    )
    const dead = diffViews(before, view(3, 'n1', { n1: {}, n2: { state: 'dead' } }))
    assert.deepEqual(dead, [{ at: dead[0]?.at, kind: 'member', member: 'n2', change: 'dead', from: 'alive' }])
  })

  it('primary changes when both views know the databases; config versions by hash', () => {
    const p = (name: string | null) => ({ primary: { name, timeline: 3 } })
    const c = (version: number, hash: string) => ({ config: { version, hash, origin: 'n1' } })
    const before = view(1, 'n1', three, { ...p('pg1'), ...c(1, 'a') })
    const events = diffViews(before, view(2, 'n1', three, { ...p('pg2'), ...c(2, 'b') }))
    assert.deepEqual(
      events.map((e) => e.kind),
      ['primary', 'config'],
    )
    // a view without databases says nothing about the primary
    assert.deepEqual(diffViews(before, view(2, 'n1', three, c(1, 'a'))), [])
  })
})

/** A small seeded generator, so a failing run is replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

describe('event log (property)', () => {
  it('over random view sequences: valid events, increasing seq, bounded, one master event per change', () => {
    const ids = ['n1', 'n2', 'n3', 'n4']
    const states = ['alive', 'suspect', 'dead', 'left'] as const
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed)
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T
      const log = new ViewEventLog('n1', 50)
      let changes = 0
      let prevMaster: string | null | undefined
      for (let step = 0; step < 60; step++) {
        const members: Record<string, Partial<MemberSnapshot>> = {}
        for (const id of ids) {
          if (r() < 0.1) continue
          members[id] = {
            state: pick(states),
            effectivePriority: Math.floor(r() * 3) * 10,
            eligible: r() < 0.8,
            maintenance: r() < 0.1 ? { reason: null } : null,
          }
        }
        const master = r() < 0.2 ? null : pick(ids)
        const added = log.observeSnapshot(view(step, master, members))
        if (prevMaster !== undefined && prevMaster !== master) changes++
        prevMaster = master
        for (const e of added) ClusterEventSchema.parse(e)
      }
      const all = EventsViewSchema.parse(log.events())
      assert.ok(all.events.length <= 50, `seed ${seed}`)
      for (let i = 1; i < all.events.length; i++) {
        assert.ok((all.events[i]?.seq ?? 0) > (all.events[i - 1]?.seq ?? 0), `seed ${seed}`)
      }
      if (!all.truncated) {
        assert.equal(all.events.filter((e) => e.kind === 'master').length, changes, `seed ${seed}`)
      }
    }
  })

  it('since= returns only newer events and says when older ones fell off', () => {
    const ring = new EventRing(3)
    const body = { at: 't', kind: 'config', version: 1, hash: 'h', origin: 'n1' } as const
    ring.append([body, body])
    assert.deepEqual(
      ring.since('n1', 1).events.map((e) => e.seq),
      [2],
    )
    assert.equal(ring.since('n1').truncated, false)
    ring.append([body, body, body])
    const v = ring.since('n1', 1)
    assert.deepEqual(
      v.events.map((e) => e.seq),
      [3, 4, 5],
    )
    assert.equal(v.truncated, true)
    assert.equal(ring.since('n1', 2).truncated, false)
    assert.deepEqual(ring.since('n1', 5).events, [])
    assert.equal(ring.since('n1', 5).lastSeq, 5)
  })
})
