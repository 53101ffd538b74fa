import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type BackendsView,
  type ClusterEvent,
  type ClusterStatus,
  EventsViewSchema,
  type MemberView,
} from '@pgmesh/protocol'
import { NodeEventLog } from './event-log.js'

function member(id: string, state: MemberView['state'], priority: number): MemberView {
  return {
    id,
    peerId: `peer-${id}`,
    self: id === 'n1',
    state,
    priority,
    incarnation: 1,
    addrs: [],
    api: null,
    lastHeardAt: null,
    lastHeardAgoMs: null,
    stateSince: new Date(0).toISOString(),
    configVersion: 1,
    maintenance: null,
    election: {
      term: 1,
      effectivePriority: priority,
      eligible: true,
      holder: false,
      leader: null,
      failingChecks: [],
    },
  }
}

function status(at: number, master: string | null, members: MemberView[]): ClusterStatus {
  return {
    cluster: 'c1',
    version: '0.0.0',
    self: 'n2',
    generatedAt: new Date(at).toISOString(),
    members,
    counts: { alive: 0, suspect: 0, dead: 0, left: 0 },
    gossip: { connectedPeers: 0, topicPeers: 0, messagesIn: 0, messagesOut: 0, dropped: {} },
    election: {
      quorum: 'majority',
      state: 'BACKUP',
      role: 'follower',
      term: at,
      master,
      vipHolders: master === null ? [] : [master],
      vip: { address: null, driver: 'none', held: false },
      leaseRemainingMs: null,
      priority: 105,
      effectivePriority: 105,
      eligible: true,
      failingChecks: [],
      checks: [],
      voters: null,
      masterChanges: 0,
    },
    listeners: [],
    removed: [],
    config: { version: 1, hash: 'h1', origin: 'n1', pendingRestart: [], conflicts: 0 },
  }
}

function backends(primary: string): BackendsView {
  return {
    node: 'n2',
    agreed: { primary, primaryTimeline: 2, replicas: [], up: [], notes: [] },
    databases: [],
  }
}

describe('NodeEventLog', () => {
  it('one observe per status change: a MASTER kill and a switchover, with causes and times', () => {
    const logged: ClusterEvent[] = []
    const log = new NodeEventLog({ nodeId: 'n2', onEvent: (e) => logged.push(e) })
    const all = () => [member('n1', 'alive', 110), member('n2', 'alive', 105), member('n3', 'alive', 100)]
    assert.deepEqual(log.observe(status(1000, 'n1', all()), backends('pg1')), [])
    const down = all()
    down[0] = member('n1', 'suspect', 110)
    const added = log.observe(status(2000, 'n2', down), backends('pg2'))
    assert.deepEqual(
      added.map((e) => e.kind),
      ['member', 'master', 'primary'],
    )
    const m = added[1]
    assert.ok(m?.kind === 'master')
    assert.deepEqual([m.from, m.to, m.cause, m.at], ['n1', 'n2', 'failure', new Date(2000).toISOString()])
    assert.deepEqual(logged, added)
    const view = EventsViewSchema.parse(log.events())
    assert.equal(view.source, 'n2')
    assert.equal(view.lastSeq, 3)
    assert.deepEqual(
      log.events(2).events.map((e) => e.kind),
      ['primary'],
    )
  })

  it('stays bounded', () => {
    const log = new NodeEventLog({ nodeId: 'n2', capacity: 4 })
    for (let i = 0; i < 20; i++) log.observe(status(i, i % 2 === 0 ? 'n1' : 'n3', []))
    const v = log.events()
    assert.equal(v.events.length, 4)
    assert.equal(v.truncated, true)
    assert.equal(v.lastSeq, 19)
  })
})
