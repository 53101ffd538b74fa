import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PeerDirectory, type PeerPinStore, type PeerPins } from './peer-directory.js'

function memoryStore(): PeerPinStore & { saved: PeerPins | null } {
  const s = {
    saved: null as PeerPins | null,
    read: async () => s.saved,
    write: async (p: PeerPins) => {
      s.saved = structuredClone(p)
    },
  }
  return s
}

describe('PeerDirectory', () => {
  it('pins a node id to the first peer id that speaks for it and refuses a second one', () => {
    const d = new PeerDirectory('self')
    assert.equal(d.admit('n2', 'peerA'), null)
    d.bind('n2', 'peerA', ['/ip4/127.0.0.1/tcp/1/p2p/peerA'])
    assert.equal(d.admit('n2', 'peerB'), 'GOSSIP_ID_CLAIMED', 'another peer claiming n2')
    assert.equal(d.admit('n3', 'peerA'), 'GOSSIP_ID_CLAIMED', 'the same peer claiming a second id')
    assert.equal(d.peerOf('n2'), 'peerA')
    assert.equal(d.nodeOf('peerA'), 'n2')
  })

  it('never pins its own id (a conflict with self is membership’s to report)', () => {
    const d = new PeerDirectory('self')
    d.bind('self', 'peerX', [])
    assert.equal(d.peerOf('self'), undefined)
  })

  it('releases a pin only on an operator removal, then takes the new peer', () => {
    const d = new PeerDirectory('self')
    d.bind('n2', 'peerA', [])
    d.release('n2')
    assert.equal(d.admit('n2', 'peerB'), null)
    d.bind('n2', 'peerB', [])
    assert.equal(d.peerOf('n2'), 'peerB')
    assert.equal(d.nodeOf('peerA'), undefined)
  })

  it('keeps pins and addresses across a restart through its store', async () => {
    const store = memoryStore()
    const a = new PeerDirectory('self', store)
    a.bind('n2', 'peerA', ['/ip4/127.0.0.1/tcp/7946/p2p/peerA'])
    await a.save()
    const b = new PeerDirectory('self', store)
    await b.load()
    assert.equal(b.admit('n2', 'peerB'), 'GOSSIP_ID_CLAIMED', 'the pin survived the restart')
    assert.deepEqual(b.known(), [
      { node: 'n2', peerId: 'peerA', addrs: ['/ip4/127.0.0.1/tcp/7946/p2p/peerA'] },
    ])
  })

  it('stays bounded under a flood of invented ids', () => {
    const d = new PeerDirectory('self')
    for (let i = 0; i < 5_000; i++) d.bind(`x${i}`, `p${i}`, [])
    assert.ok(d.known().length <= 1024, `holds ${d.known().length}`)
  })
})

describe('PeerDirectory after a graceful leave', () => {
  it('lets a node that left rejoin under its id with a new key (a reinstall)', () => {
    let left = false
    const d = new PeerDirectory('self', undefined, () => left)
    d.bind('n3', 'old', [])
    assert.equal(d.admit('n3', 'new'), 'GOSSIP_ID_CLAIMED', 'while the old process is a member')
    left = true
    assert.equal(d.admit('n3', 'new'), null)
    // the heartbeat that was admitted makes n3 alive again before it is bound: the pin moves all the same
    left = false
    d.bind('n3', 'new', [])
    assert.equal(d.peerOf('n3'), 'new')
    assert.equal(d.nodeOf('old'), undefined)
    assert.equal(d.admit('n3', 'old'), 'GOSSIP_ID_CLAIMED', 'the old key cannot come back')
  })
})
