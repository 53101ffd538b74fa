/**
 * A peer that holds the cluster secret but publishes malformed gossip: the insider case of
 * "bad input gets a counted drop". Usage: garbage-peer.ts SECRET_FILE SEED_PORT CLUSTER
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { GossipTransport } from '../../mesh-node/src/gossip/gossip-transport.js'
import { loadSecret } from '../../mesh-node/src/secret.js'

const [secretFile, seedPort, cluster] = process.argv.slice(2)
if (secretFile === undefined || seedPort === undefined || cluster === undefined) {
  process.stderr.write('usage: garbage-peer.ts SECRET_FILE SEED_PORT CLUSTER\n')
  process.exit(2)
}
const secret = await loadSecret(secretFile)
if (!secret.ok) throw new Error(secret.error.message)

let subscribed = false
const transport = new GossipTransport(
  {
    privateKey: await generateKeyPair('Ed25519'),
    listen: { host: '127.0.0.1', port: 0 },
    psk: secret.value.psk,
    topic: `pgmesh/${cluster}/v1`,
    maxMessageBytes: 65_536,
    meshHeartbeatMs: 200,
    meshDegree: 2,
    maxPeers: 4,
    directProtocol: `/pgmesh/${cluster}/election/1`,
    maxDirectFrameBytes: 16_384,
  },
  {
    validate: () => true,
    message: () => undefined,
    peerConnected: () => undefined,
    peerDisconnected: () => undefined,
    peerSubscribed: () => {
      subscribed = true
    },
    directFrame: () => undefined,
    directError: () => undefined,
  },
)
await transport.start()
const seedPeer = await transport.dialSeed(
  { host: '127.0.0.1', port: Number(seedPort) },
  AbortSignal.timeout(5000),
)
const deadline = Date.now() + 5000
while (!subscribed && Date.now() < deadline) await sleep(20)

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
const hb = {
  v: 1,
  kind: 'heartbeat',
  cluster,
  node: 'impostor',
  peerId: transport.peerId,
  incarnation: 1,
  sentAt: Date.now(),
  seq: 1,
  priority: 100,
  addrs: [],
  api: null,
  configVersion: 0,
}
const payloads: Uint8Array[] = [
  randomBytes(200),
  new TextEncoder().encode('{"v":1,'),
  enc({ ...hb, v: 99 }),
  enc({ ...hb, priority: 'high' }),
  enc({ ...hb, cluster: 'someone-else' }),
  enc({ ...hb, peerId: '12D3KooWNotTheSender' }),
  new Uint8Array(60_000).fill(0x7b),
]
let sent = 0
for (let round = 0; round < 3; round++) {
  for (const p of payloads) {
    try {
      await transport.publish(p)
      sent++
    } catch {
      // publishing can fail while the mesh forms; the next round retries
    }
  }
  await sleep(200)
}
// the election's direct channel: frames from a peer no heartbeat introduced, and junk
for (const frame of [
  randomBytes(100),
  enc({ v: 1, msg: { kind: 'lease', term: 1e9 } }),
  randomBytes(16_000),
]) {
  if (transport.sendDirect(seedPeer, frame)) sent++
}
await sleep(300)
process.stdout.write(`${JSON.stringify({ sent, peerId: transport.peerId })}\n`)
await transport.stop()
