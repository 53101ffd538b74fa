import { z } from 'zod'
import { ConfigHashSchema, VersionedConfigSchema } from './cluster-config.js'
import { jsonTextTooDeep, MAX_JSON_DEPTH } from './codec.js'
import { type ElectionMessage, ElectionMessageSchema, VoterConfigIdSchema } from './election.js'
import { err, ok, pgmeshError, type Result } from './errors.js'
import { NodeIdSchema, PrioritySchema } from './ids.js'
import { DbStateSchema } from './listeners.js'
import { PolicyDeltaSchema } from './policy.js'

/** Wire version this build speaks. Decoders accept messages of this version and strip unknown fields. */
export const GOSSIP_VERSION = 1

/** Hard limit before any parsing; the configured `cluster.gossip.maxMessageBytes` may be lower. */
export const GOSSIP_MAX_BYTES = 1_048_576

const Uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

/**
 * The largest incarnation a message may carry. Nodes count incarnations from the wall clock in
 * seconds (about 1.8e9 today; 2^40 is 30 000 years away), so no real node comes near it, and no
 * message can take one to where a restart could no longer supersede it.
 */
export const MAX_INCARNATION = 2 ** 40
const Incarnation = z.number().int().min(0).max(MAX_INCARNATION)
const PeerIdSchema = z.string().min(1).max(128)
const MultiaddrString = z.string().min(1).max(256)

const Envelope = {
  v: z.literal(GOSSIP_VERSION),
  cluster: z.string().min(1).max(63),
  node: NodeIdSchema,
  peerId: PeerIdSchema,
  /** bumped at every start of a node process: a restarted node supersedes its old self */
  incarnation: Incarnation,
  /** sender's wall clock, ms since the epoch; informational (liveness uses receive time) */
  sentAt: Uint,
}

export const HeartbeatSchema = z.object({
  ...Envelope,
  kind: z.literal('heartbeat'),
  /** per-incarnation sequence number; lets a receiver ignore reordered duplicates */
  seq: Uint,
  priority: PrioritySchema,
  /** multiaddrs (with /p2p/) where the sender accepts gossip connections */
  addrs: z.array(MultiaddrString).max(16),
  /** host:port of the sender's control API, when it serves one */
  api: z.string().max(300).nullable(),
  /** version of the cluster config the sender runs */
  configVersion: Uint,
  /** its hash: the same version with another hash is a conflict the lower hash wins */
  configHash: ConfigHashSchema.optional(),
  /** the sender's election view, for the status API (the election itself uses direct streams) */
  election: z
    .object({
      term: Uint,
      effectivePriority: PrioritySchema,
      eligible: z.boolean(),
      holder: z.boolean(),
      leader: NodeIdSchema.nullable(),
      failingChecks: z.array(z.string().max(63)).max(64),
      /**
       * the voter configuration the sender runs: gossip carries it to nodes that have no direct
       * connection to the sender, as a witness for that configuration (absent from older nodes)
       */
      config: VoterConfigIdSchema.nullable().optional(),
    })
    .optional(),
  /** present while an operator has the sender in maintenance (not eligible, listeners closed) */
  maintenance: z
    .object({
      reason: z.string().max(200).nullable(),
      /** wall clock, ms since the epoch, when maintenance began */
      since: Uint,
    })
    .optional(),
  /**
   * members an operator removed, relayed by every node while it remembers them: a member is gone
   * at every incarnation up to `incarnation`; `ageMs` since the removal lets each node forget it
   * at about the same time
   */
  removed: z
    .array(z.object({ node: NodeIdSchema, incarnation: Incarnation, ageMs: Uint }))
    .max(64)
    .optional(),
  /**
   * push-pull for joiners: members the sender hears from and where they listen, sent in the
   * heartbeat that follows a new connection, so a joiner meets the whole mesh through whichever
   * member answered it, not only through gossip relayed by its seed
   */
  peers: z
    .array(z.object({ node: NodeIdSchema, peerId: PeerIdSchema, addrs: z.array(MultiaddrString).max(4) }))
    .max(64)
    .optional(),
  /** the sender's confirmed view of each database node (the primary agreement's input) */
  databases: z
    .array(
      z.object({
        name: z.string().min(1).max(63),
        state: DbStateSchema,
        timeline: Uint.nullable(),
        lagBytes: Uint.nullable(),
        /** how old the sender's latest probe result was when it sent this, ms */
        ageMs: Uint,
      }),
    )
    .max(64)
    .optional(),
  /** the sender's listener policy changes since its previous heartbeat (rate use, sticky entries) */
  policy: PolicyDeltaSchema.optional(),
})
export type Heartbeat = z.infer<typeof HeartbeatSchema>

/** Sent on graceful stop so peers mark the member `left` at once instead of waiting for timeouts. */
export const LeaveSchema = z.object({
  ...Envelope,
  kind: z.literal('leave'),
})
export type Leave = z.infer<typeof LeaveSchema>

/** A cluster config version, sent when it is made and to any member seen running an older one. */
export const ConfigMessageSchema = z.object({
  ...Envelope,
  kind: z.literal('config'),
  config: VersionedConfigSchema,
})
export type ConfigMessage = z.infer<typeof ConfigMessageSchema>

export const GossipMessageSchema = z.discriminatedUnion('kind', [
  HeartbeatSchema,
  LeaveSchema,
  ConfigMessageSchema,
])
export type GossipMessage = z.infer<typeof GossipMessageSchema>

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeGossip(msg: GossipMessage, maxBytes = GOSSIP_MAX_BYTES): Result<Uint8Array> {
  const bytes = encoder.encode(JSON.stringify(msg))
  if (bytes.byteLength > maxBytes) {
    return err(
      pgmeshError(
        'GOSSIP_TOO_LARGE',
        `message of ${bytes.byteLength} bytes exceeds the ${maxBytes}-byte limit`,
      ),
    )
  }
  return ok(bytes)
}

/**
 * Never throws: every way a message can be bad maps to an error code that metrics count. Size and
 * nesting depth are bounded before the text is parsed.
 */
export function decodeGossip(bytes: Uint8Array, maxBytes = GOSSIP_MAX_BYTES): Result<GossipMessage> {
  return decodeVersionedJson(bytes, maxBytes, GossipMessageSchema)
}

/**
 * Election traffic travels on direct streams between peers, not through gossipsub: a MASTER's lease
 * renewals every 50 ms would cost a signature and a relay per hop. The stream is authenticated by
 * the connection (noise + the cluster secret), so a frame needs no signature of its own.
 */
export const ElectionFrameSchema = z.object({ v: z.literal(GOSSIP_VERSION), msg: ElectionMessageSchema })
export type ElectionFrame = z.infer<typeof ElectionFrameSchema>

/** Election frames are small; anything larger is garbage. */
export const ELECTION_FRAME_MAX_BYTES = 16_384

export function encodeElectionFrame(msg: ElectionMessage): Uint8Array {
  return encoder.encode(JSON.stringify({ v: GOSSIP_VERSION, msg }))
}

export function decodeElectionFrame(bytes: Uint8Array): Result<ElectionMessage> {
  const r = decodeVersionedJson(bytes, ELECTION_FRAME_MAX_BYTES, ElectionFrameSchema)
  return r.ok ? ok(r.value.msg) : r
}

function decodeVersionedJson<T>(bytes: Uint8Array, maxBytes: number, schema: z.ZodType<T>): Result<T> {
  if (bytes.byteLength > Math.min(maxBytes, GOSSIP_MAX_BYTES)) {
    return err(
      pgmeshError(
        'GOSSIP_TOO_LARGE',
        `message of ${bytes.byteLength} bytes exceeds the ${maxBytes}-byte limit`,
      ),
    )
  }
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return err(pgmeshError('GOSSIP_NOT_UTF8', 'message is not valid UTF-8'))
  }
  if (jsonTextTooDeep(text, MAX_JSON_DEPTH)) {
    return err(pgmeshError('GOSSIP_TOO_DEEP', `message nests deeper than ${MAX_JSON_DEPTH} levels`))
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return err(pgmeshError('GOSSIP_NOT_JSON', 'message is not JSON'))
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return err(pgmeshError('GOSSIP_INVALID', 'message is not a JSON object'))
  }
  const v = (doc as { v?: unknown }).v
  if (v !== GOSSIP_VERSION) {
    return err(
      pgmeshError(
        'GOSSIP_UNSUPPORTED_VERSION',
        `message version ${JSON.stringify(v)} is not ${GOSSIP_VERSION}`,
      ),
    )
  }
  let r: ReturnType<typeof schema.safeParse>
  try {
    r = schema.safeParse(doc)
  } catch {
    // safeParse reports instead of throwing; this only guards against a bug in a refinement
    return err(pgmeshError('GOSSIP_INVALID', 'message could not be validated'))
  }
  if (!r.success) {
    const first = r.error.issues[0]
    const where =
      first === undefined ? '' : ` at ${first.path.map(String).join('.') || '(root)'}: ${first.message}`
    return err(pgmeshError('GOSSIP_INVALID', `message does not match the schema${where}`))
  }
  return ok(r.data)
}
