/**
 * A peer that holds the cluster secret: the insider case of "bad input gets a counted drop".
 *
 *   garbage-peer.ts SECRET_FILE SEED_PORT CLUSTER
 *     publishes malformed gossip and election frames, then exits
 *   garbage-peer.ts SECRET_FILE SEED_PORT CLUSTER --attack NAME [--arg JSON] [--hold MS]
 *     performs one well-formed attack (below), prints one JSON line with what it sent, keeps
 *     repeating it for --hold ms (default 2000), then exits
 *
 * Attacks (`--arg` fields, all optional unless said):
 *   config-push   { set: { "dot.path": value }, version?: number, as?: id } — waits for the
 *                 mesh's config, sets each path in a copy of its cluster section, publishes it as
 *                 the next version (or `version`, e.g. 2^53−1) with a correct hash
 *   config-deep   { depth?: 5000 } — a config message whose cluster nests arrays `depth` deep
 *   identity      { node: id, incarnation?: 2^40 } — heartbeats claiming `node` from this peer id
 *   vote-response { term?: 2^53−1, granted?: false, as?: id } — introduced by heartbeats as `as`,
 *                 sends voteResponse frames to every peer it knows (a refusal at a higher term is
 *                 what makes a Raft node step down)
 *   removal       { node: id, incarnation?: 2^40, as?: id } — heartbeats relaying a removal of `node`
 *   many-ids      { count?: 500, port?: 9 } — heartbeats for `count` invented ids, each naming a
 *                 loopback address (127.0.0.1:port) to dial
 *   frames        { frames: [json], as?: id } — arbitrary election frames to every known peer
 *   publish       { messages: [json] } — arbitrary gossip; the string "$PEER" becomes this peer id
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { decodeGossip, GOSSIP_VERSION, type VersionedConfig } from '@pgmesh/protocol'
import { configHash } from '../../mesh-node/src/config-sync/config-hash.js'
import { GossipTransport } from '../../mesh-node/src/gossip/gossip-transport.js'
import { loadSecret } from '../../mesh-node/src/secret.js'

const { positionals, values } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { attack: { type: 'string' }, arg: { type: 'string' }, hold: { type: 'string' } },
})
const [secretFile, seedPort, cluster] = positionals
if (secretFile === undefined || seedPort === undefined || cluster === undefined) {
  process.stderr.write('usage: garbage-peer.ts SECRET_FILE SEED_PORT CLUSTER [--attack NAME --arg JSON]\n')
  process.exit(2)
}
const secret = await loadSecret(secretFile)
if (!secret.ok) throw new Error(secret.error.message)

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
let subscribed = false
/** node id → peer id, from the heartbeats this peer hears */
const peers = new Map<string, string>()
let meshConfig: VersionedConfig | null = null

const transport = new GossipTransport(
  {
    privateKey: await generateKeyPair('Ed25519'),
    listen: { host: '127.0.0.1', port: 0 },
    psk: secret.value.psk,
    topic: `pgmesh/${cluster}/v1`,
    maxMessageBytes: 65_536,
    meshHeartbeatMs: 200,
    meshDegree: 2,
    maxPeers: 8,
    directProtocol: `/pgmesh/${cluster}/election/1`,
    maxDirectFrameBytes: 16_384,
  },
  {
    validate: () => true,
    message: (data) => {
      const r = decodeGossip(data)
      if (!r.ok) return
      if (r.value.kind === 'heartbeat') peers.set(r.value.node, r.value.peerId)
      if (r.value.kind === 'config' && (meshConfig === null || r.value.config.version > meshConfig.version))
        meshConfig = r.value.config
    },
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
const subscribedBy = Date.now() + 5000
while (!subscribed && Date.now() < subscribedBy) await sleep(20)

let sent = 0
const publish = async (msg: unknown) => {
  try {
    await transport.publish(msg instanceof Uint8Array ? msg : enc(msg))
    sent++
  } catch {
    // publishing can fail while the mesh forms; attacks repeat
  }
}

let seq = 0
const heartbeat = (node: string, extra: Record<string, unknown> = {}, incarnation = 1) => ({
  v: GOSSIP_VERSION,
  kind: 'heartbeat',
  cluster,
  node,
  peerId: transport.peerId,
  incarnation,
  sentAt: Date.now(),
  seq: ++seq,
  priority: 1,
  addrs: transport.addresses(),
  api: null,
  configVersion: 0,
  ...extra,
})

/** Repeats `round` every `everyMs` until `ms` have passed. */
async function repeat(ms: number, everyMs: number, round: () => Promise<void>): Promise<void> {
  const until = Date.now() + ms
  do {
    await round()
    await sleep(everyMs)
  } while (Date.now() < until)
}

/** Heartbeats as `as` until the mesh has sent its config (nodes send it to members behind). */
async function waitForMeshConfig(as: string): Promise<VersionedConfig> {
  const until = Date.now() + 15_000
  while (meshConfig === null && Date.now() < until) {
    await publish(heartbeat(as))
    await sleep(200)
  }
  if (meshConfig === null) throw new Error('the mesh sent no config within 15 s')
  return meshConfig
}

function setPath(doc: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let at: Record<string, unknown> = doc
  for (const k of keys.slice(0, -1)) {
    const next = at[k]
    if (typeof next !== 'object' || next === null) at[k] = {}
    at = at[k] as Record<string, unknown>
  }
  at[keys.at(-1)!] = value
}

const sendFrames = (frames: readonly unknown[]) => {
  for (const peer of new Set([seedPeer, ...peers.values()])) {
    if (peer === transport.peerId) continue
    for (const f of frames) if (transport.sendDirect(peer, enc(f))) sent++
  }
}

type Arg = Record<string, unknown>
const num = (v: unknown, d: number) => (typeof v === 'number' ? v : d)
const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d)
const hold = Number(values.hold ?? 2000)

const attacks: Record<string, (a: Arg) => Promise<Record<string, unknown>>> = {
  'config-push': async (a) => {
    const as = str(a.as, 'intruder')
    const base = await waitForMeshConfig(as)
    const input = structuredClone(base.cluster)
    for (const [path, value] of Object.entries((a.set ?? {}) as Arg)) setPath(input, path, value)
    const version = num(a.version, base.version + 1)
    const config = {
      version,
      hash: configHash(input),
      origin: as,
      source: 'api',
      at: new Date().toISOString(),
      cluster: input,
    }
    const msg = () => ({ ...heartbeat(as), kind: 'config', config })
    await repeat(hold, 300, async () => {
      await publish(msg())
      await publish(heartbeat(as, { configVersion: version, configHash: config.hash }))
    })
    return { baseVersion: base.version, version, hash: config.hash }
  },
  'config-deep': async (a) => {
    const depth = num(a.depth, 5000)
    const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`
    const text = `{"v":${GOSSIP_VERSION},"kind":"config","cluster":${JSON.stringify(cluster)},"node":"intruder","peerId":"${transport.peerId}","incarnation":1,"sentAt":${Date.now()},"config":{"version":2,"hash":"${'a'.repeat(64)}","origin":"intruder","source":"api","at":"x","cluster":{"x":${nested}}}}`
    await repeat(hold, 300, () => publish(new TextEncoder().encode(text)))
    return { depth, bytes: text.length }
  },
  identity: async (a) => {
    const node = str(a.node, 'n1')
    const incarnation = num(a.incarnation, 2 ** 40)
    await repeat(hold, 100, () => publish(heartbeat(node, { priority: 254 }, incarnation)))
    return { node, incarnation }
  },
  'vote-response': async (a) => {
    const as = str(a.as, 'intruder')
    const term = num(a.term, Number.MAX_SAFE_INTEGER)
    const frame = {
      v: GOSSIP_VERSION,
      msg: { kind: 'voteResponse', preVote: false, term, granted: a.granted === true, sentAt: 0 },
    }
    await repeat(hold, 100, async () => {
      await publish(heartbeat(as))
      sendFrames([frame])
    })
    return { term, peers: peers.size }
  },
  removal: async (a) => {
    const as = str(a.as, 'intruder')
    const node = str(a.node, 'n1')
    const incarnation = num(a.incarnation, 2 ** 40)
    await repeat(hold, 100, () => publish(heartbeat(as, { removed: [{ node, incarnation, ageMs: 0 }] })))
    return { node, incarnation }
  },
  'many-ids': async (a) => {
    const count = num(a.count, 500)
    const port = num(a.port, 9)
    const addrs = [`/ip4/127.0.0.1/tcp/${port}/p2p/${transport.peerId}`]
    await repeat(hold, 500, async () => {
      for (let i = 0; i < count; i++) await publish(heartbeat(`ghost-${i}`, { addrs }))
    })
    return { count }
  },
  frames: async (a) => {
    const as = str(a.as, 'intruder')
    const frames = Array.isArray(a.frames) ? a.frames : []
    await repeat(hold, 100, async () => {
      await publish(heartbeat(as))
      sendFrames(frames)
    })
    return { frames: frames.length }
  },
  publish: async (a) => {
    const messages = (Array.isArray(a.messages) ? a.messages : []).map((m) =>
      JSON.parse(JSON.stringify(m).replaceAll('$PEER', transport.peerId)),
    )
    await repeat(hold, 300, async () => {
      for (const m of messages) await publish(m)
    })
    return { messages: messages.length }
  },
}

if (values.attack !== undefined) {
  const attack = attacks[values.attack]
  if (attack === undefined) {
    process.stderr.write(`unknown attack ${values.attack}; known: ${Object.keys(attacks).join(', ')}\n`)
    await transport.stop()
    process.exit(2)
  }
  const result = await attack(values.arg === undefined ? {} : (JSON.parse(values.arg) as Arg))
  process.stdout.write(
    `${JSON.stringify({ attack: values.attack, sent, peerId: transport.peerId, ...result })}\n`,
  )
  await transport.stop()
  process.exit(0)
}

// no attack named: malformed input of every kind
const hb = { ...heartbeat('impostor'), priority: 100, addrs: [] }
const payloads: Uint8Array[] = [
  randomBytes(200),
  new TextEncoder().encode('{"v":1,'),
  enc({ ...hb, v: 99 }),
  enc({ ...hb, priority: 'high' }),
  enc({ ...hb, cluster: 'someone-else' }),
  enc({ ...hb, peerId: '12D3KooWNotTheSender' }),
  new Uint8Array(60_000).fill(0x7b),
]
for (let round = 0; round < 3; round++) {
  for (const p of payloads) await publish(p)
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
process.exit(0)
