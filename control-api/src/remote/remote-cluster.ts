import {
  ApiErrorSchema,
  type BackendsView,
  BackendsViewSchema,
  type ClusterStatus,
  ClusterStatusSchema,
  type ConfigPutBody,
  type ConfigPutResponse,
  ConfigPutResponseSchema,
  type ConfigView,
  ConfigViewSchema,
  type EventsView,
  err,
  type HealthResponse,
  type MaintenancePutBody,
  type MaintenanceView,
  MaintenanceViewSchema,
  type MasterResponse,
  type MemberRemoveResponse,
  MemberRemoveResponseSchema,
  type MemberView,
  ok,
  pgmeshError,
  type ReadyResponse,
  type Result,
  type Schema,
} from '@pgmesh/protocol'
import type { ClusterSource, MetricsText, RequestContext } from '../cluster-source.js'
import { SourceError } from '../errors.js'
import { snapshotOf } from '../events/view-diff.js'
import { ViewEventLog } from '../events/view-event-log.js'
import { type AggregatedView, aggregate, type NodeView } from './aggregate.js'
import { type CallOptions, callNode, type FetchLike, type NodeAnswer } from './node-client.js'
import { mergeExpositions } from './prom-merge.js'

export interface RemoteNode {
  /** the node's control API base URL */
  readonly url: string
  /** bearer token for reads (nodes with `protectReads`) */
  readonly token?: string
}

export interface RemoteClusterOptions {
  /** shown as `self` and as the events' source */
  readonly name: string
  readonly nodes: readonly RemoteNode[]
  /** per node and call; a node slower than this is marked unreachable in that view */
  readonly nodeTimeoutMs: number
  /** the control plane's own version string, shown in the status */
  readonly version: string
  readonly eventCapacity?: number
  /** default: the runtime's global fetch */
  readonly fetch?: FetchLike
  /** monotonic ms, for latencies and uptime; default performance.now */
  readonly mono?: () => number
  /** wall clock, for `generatedAt` and the events' times; default Date.now */
  readonly wallNow?: () => number
}

const PROM_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * The whole cluster as a ClusterSource, read from the nodes' own APIs: every read fans out to
 * every configured node at once (each bounded by `nodeTimeoutMs`), and is aggregated into one
 * view (see `aggregate`). Operator actions are forwarded, with the caller's token, to a node
 * that answers. Only `fetch` and timers: it runs on workerd, Node or anything Web-standard.
 */
export class RemoteCluster implements ClusterSource {
  readonly #o: RemoteClusterOptions
  readonly #fetch: FetchLike
  readonly #mono: () => number
  readonly #wallNow: () => number
  readonly #started: number
  readonly #log: ViewEventLog
  /** node id → url, from the latest answers: where per-node actions go */
  readonly #ids = new Map<string, string>()
  /** the fan-out started in this synchronous turn, shared by the reads of one request */
  #turn: Promise<AggregatedView> | undefined
  #lastMaster: string | null = null
  #lastObservedAt = 0

  constructor(options: RemoteClusterOptions) {
    this.#o = options
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init))
    this.#mono = options.mono ?? (() => performance.now())
    this.#wallNow = options.wallNow ?? (() => Date.now())
    this.#started = this.#mono()
    this.#log = new ViewEventLog(options.name, options.eventCapacity)
  }

  #call(url: string, path: string, options: Omit<CallOptions, 'timeoutMs'>): Promise<Result<NodeAnswer>> {
    return callNode(this.#fetch, this.#mono, url, path, { ...options, timeoutMs: this.#o.nodeTimeoutMs })
  }

  #readAuth(node: RemoteNode): string | undefined {
    return node.token === undefined ? undefined : `Bearer ${node.token}`
  }

  /** GET a JSON read from one node and check its shape; an error status is a failure here. */
  async #read<T>(node: RemoteNode, path: string, schema: Schema<T>): Promise<Result<T & object>> {
    const auth = this.#readAuth(node)
    const r = await this.#call(node.url, path, auth === undefined ? {} : { authorization: auth })
    if (!r.ok) return r
    return answerAs(r.value, schema, `${node.url}${path}`) as Result<T & object>
  }

  async #viewOf(node: RemoteNode): Promise<NodeView> {
    const started = this.#mono()
    const [status, backends] = await Promise.all([
      this.#read(node, '/v1/status', ClusterStatusSchema),
      this.#read(node, '/v1/backends', BackendsViewSchema),
    ])
    if (!status.ok) return { url: node.url, ok: false, error: status.error }
    return {
      url: node.url,
      ok: true,
      status: status.value as ClusterStatus,
      backends: backends.ok ? (backends.value as BackendsView) : null,
      latencyMs: Math.round(this.#mono() - started),
    }
  }

  /**
   * One fan-out: every node at once, each bounded, then one aggregated view (and its events).
   * Reads made in the same synchronous turn (the status page's status + backends) share one; a
   * later turn, so any other request, starts its own: workerd does not let a request wait on I/O
   * another request started.
   */
  view(): Promise<AggregatedView> {
    if (this.#turn !== undefined) return this.#turn
    const p = this.#fanOut()
    this.#turn = p
    queueMicrotask(() => {
      this.#turn = undefined
    })
    return p
  }

  async #fanOut(): Promise<AggregatedView> {
    const views = await Promise.all(this.#o.nodes.map((n) => this.#viewOf(n)))
    const now = this.#wallNow()
    for (const v of views) if (v.ok) this.#ids.set(v.status.self, v.url)
    const agg = aggregate(views, {
      name: this.#o.name,
      version: this.#o.version,
      now: new Date(now).toISOString(),
    })
    if (agg.status.election.master !== null) this.#lastMaster = agg.status.election.master
    // concurrent fan-outs finish in any order: only a newer view may add events
    if (now >= this.#lastObservedAt) {
      this.#lastObservedAt = now
      this.#log.observeSnapshot(snapshotOf(agg.status, agg.backends))
    }
    return agg
  }

  async status(): Promise<ClusterStatus> {
    return (await this.view()).status
  }

  async members(): Promise<readonly MemberView[]> {
    return (await this.view()).status.members
  }

  async backends(): Promise<BackendsView> {
    return (await this.view()).backends
  }

  health(): HealthResponse {
    return { status: 'ok', node: this.#o.name, uptimeMs: Math.round(this.#mono() - this.#started) }
  }

  /** Ready while a majority of the configured nodes answer. */
  async ready(): Promise<ReadyResponse> {
    const a = (await this.view()).status.aggregate
    const reachable = a?.reachable ?? 0
    const total = a?.total ?? this.#o.nodes.length
    const reasons = (a?.nodes ?? [])
      .filter((n) => !n.reachable)
      .map((n) => `${n.url}: ${n.error?.message ?? 'unreachable'}`)
    return { ready: reachable * 2 > total, reasons }
  }

  /** 200 while the nodes agree on a MASTER (the control plane itself holds nothing). */
  async master(): Promise<MasterResponse> {
    const s = (await this.view()).status
    return {
      master: s.election.master !== null,
      node: this.#o.name,
      current: s.election.master,
      term: s.election.term,
    }
  }

  events(since?: number): EventsView {
    return this.#log.events(since)
  }

  /** Nodes in the order actions are tried: the last known MASTER first, then as configured. */
  #candidates(exclude?: string): RemoteNode[] {
    const skip = exclude === undefined ? undefined : this.#ids.get(exclude)
    const first = this.#lastMaster === null ? undefined : this.#ids.get(this.#lastMaster)
    const nodes = this.#o.nodes.filter((n) => n.url !== skip)
    return [...nodes.filter((n) => n.url === first), ...nodes.filter((n) => n.url !== first)]
  }

  /** Sends to the first node that answers at all (its refusal included); a node that is down is skipped. */
  async #forward<T>(
    path: string,
    options: Omit<CallOptions, 'timeoutMs'>,
    schema: Schema<T>,
    exclude?: string,
  ): Promise<Result<T>> {
    const failures: string[] = []
    for (const node of this.#candidates(exclude)) {
      const r = await this.#call(node.url, path, options)
      if (!r.ok) {
        failures.push(r.error.message)
        continue
      }
      return answerAs(r.value, schema, `${node.url}${path}`)
    }
    return err(
      pgmeshError('CP_NO_LIVE_NODE', `no node answered ${path}: ${failures.join('; ') || 'none configured'}`),
    )
  }

  async config(): Promise<ConfigView> {
    for (const node of this.#candidates()) {
      const r = await this.#read(node, '/v1/config', ConfigViewSchema)
      if (r.ok) return r.value as ConfigView
    }
    throw new SourceError(pgmeshError('CP_NO_LIVE_NODE', 'no node served /v1/config'))
  }

  putConfig(body: ConfigPutBody, ctx?: RequestContext): Promise<Result<ConfigPutResponse>> {
    return this.#forward('/v1/config', writeOptions('PUT', body, ctx), ConfigPutResponseSchema)
  }

  async setMaintenance(body: MaintenancePutBody, ctx?: RequestContext): Promise<Result<MaintenanceView>> {
    const id = ctx?.node
    if (id === undefined) {
      return err(pgmeshError('CP_NODE_REQUIRED', 'maintenance is per node: name it with ?node=ID'))
    }
    if (!this.#ids.has(id)) await this.view()
    const url = this.#ids.get(id)
    if (url === undefined) return err(pgmeshError('MEMBER_NOT_FOUND', `no configured node answered as ${id}`))
    const r = await this.#call(url, '/v1/maintenance', writeOptions('PUT', body, ctx))
    return r.ok ? answerAs(r.value, MaintenanceViewSchema, `${url}/v1/maintenance`) : r
  }

  removeMember(id: string, ctx?: RequestContext): Promise<Result<MemberRemoveResponse>> {
    return this.#forward(
      `/v1/members/${encodeURIComponent(id)}/remove`,
      writeOptions('POST', undefined, ctx),
      MemberRemoveResponseSchema,
      id,
    )
  }

  /** Every node's metrics with a `pgmesh_node` label, and the control plane's own view of each node. */
  async metrics(): Promise<MetricsText> {
    const answers = await Promise.all(
      this.#o.nodes.map(async (node) => {
        const auth = this.#readAuth(node)
        const r = await this.#call(node.url, '/metrics', {
          expect: 'text',
          ...(auth === undefined ? {} : { authorization: auth }),
        })
        return { node, r }
      }),
    )
    const idOf = (url: string) => [...this.#ids].find(([, u]) => u === url)?.[0] ?? url
    const parts = answers
      .filter((a) => a.r.ok && a.r.value.status === 200)
      .map((a) => ({ node: idOf(a.node.url), text: a.r.ok ? a.r.value.text : '' }))
    const own = [
      "# HELP pgmesh_control_plane_node_up Whether the node answered the control plane's last /metrics call.",
      '# TYPE pgmesh_control_plane_node_up gauge',
      ...answers.map(
        (a) =>
          `pgmesh_control_plane_node_up{url="${a.node.url.replace(/["\\\n]/g, '_')}"} ${a.r.ok && a.r.value.status === 200 ? 1 : 0}`,
      ),
      '',
    ].join('\n')
    return { contentType: PROM_CONTENT_TYPE, body: `${own}${mergeExpositions(parts)}` }
  }
}

function writeOptions(
  method: 'PUT' | 'POST',
  body: unknown,
  ctx: RequestContext | undefined,
): Omit<CallOptions, 'timeoutMs'> {
  return {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(ctx?.authorization === undefined ? {} : { authorization: ctx.authorization }),
  }
}

/** A node's answer as a result: 2xx in the expected shape, or its own error passed on as it is. */
function answerAs<T>(a: NodeAnswer, schema: Schema<T>, what: string): Result<T> {
  if (a.status >= 200 && a.status < 300) {
    const parsed = schema.safeParse(a.body)
    if (parsed.success) return ok(parsed.data)
    return err(pgmeshError('CP_NODE_BAD_ANSWER', `${what} answered ${a.status} in an unexpected shape`))
  }
  const e = ApiErrorSchema.safeParse(a.body)
  if (e.success) return err(pgmeshError(e.data.error.code, e.data.error.message, e.data.error.issues))
  return err(pgmeshError('CP_NODE_BAD_ANSWER', `${what} answered ${a.status} without a pgmesh error`))
}
