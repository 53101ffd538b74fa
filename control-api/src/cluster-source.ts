import type {
  BackendsView,
  ClusterStatus,
  ConfigPutBody,
  ConfigPutResponse,
  ConfigView,
  EventsView,
  HealthResponse,
  MaintenancePutBody,
  MaintenanceView,
  MasterResponse,
  MemberRemoveResponse,
  MemberView,
  ReadyResponse,
  Result,
} from '@pgmesh/protocol'

/** A metrics exposition ready to serve, e.g. Prometheus text format. */
export interface MetricsText {
  readonly contentType: string
  readonly body: string
}

/**
 * A source may answer at once (the live node) or after a round trip (the control plane, which
 * asks the nodes): the routes await either.
 */
export type Awaitable<T> = T | Promise<T>

/**
 * What the API knows of the request it is serving, for a source that acts on someone's behalf:
 * the control plane forwards an operator action to a node with the caller's own token. The live
 * node ignores it (its routes already checked the token).
 */
export interface RequestContext {
  /** the caller's `Authorization` header, as sent */
  readonly authorization?: string
  /** the node an action is meant for (`?node=`), when the caller named one */
  readonly node?: string
}

/** The reads every source serves: `/v1/status`, `/v1/members`, `/v1/backends`, `/health`, ... */
export interface ClusterReads {
  status(): Awaitable<ClusterStatus>
  members(): Awaitable<readonly MemberView[]>
  health(): Awaitable<HealthResponse>
  ready(): Awaitable<ReadyResponse>
  /** whether this node is the MASTER (holds the VIP lease) now */
  master(): Awaitable<MasterResponse>
  /** the database nodes as this node and its peers see them, and the agreed roles */
  backends(): Awaitable<BackendsView>
}

/** `GET /metrics` */
export interface MetricsCapability {
  metrics(): Promise<MetricsText>
}

/** `GET /v1/config`, and `PUT /v1/config` when the source can apply one */
export interface ConfigCapability {
  config(): Awaitable<ConfigView>
  putConfig?(body: ConfigPutBody, ctx?: RequestContext): Promise<Result<ConfigPutResponse>>
}

/** `GET`/`PUT /v1/maintenance`: each route is there when its method is */
export interface MaintenanceCapability {
  maintenance(): Awaitable<MaintenanceView>
  setMaintenance(body: MaintenancePutBody, ctx?: RequestContext): Promise<Result<MaintenanceView>>
}

/** `POST /v1/members/{id}/remove` */
export interface MemberAdminCapability {
  removeMember(id: string, ctx?: RequestContext): Promise<Result<MemberRemoveResponse>>
}

/** `GET /v1/events?since=` */
export interface EventsCapability {
  /** events with a sequence number above `since` (all kept ones without it) */
  events(since?: number): Awaitable<EventsView>
}

/**
 * What the control API reads from. mesh-node implements it over the live node; the control
 * plane implements it over the nodes' APIs; tests implement it over fixed data. The reads are
 * required; each optional group is a capability whose routes are mounted only when the source
 * has it (a route a source cannot serve does not exist: 404).
 */
export interface ClusterSource extends ClusterReads {
  /** `GET /metrics` */
  metrics?: MetricsCapability['metrics']
  /** `GET /v1/config`: the cluster config this node runs, with its version and origin */
  config?: ConfigCapability['config']
  /** `PUT /v1/config`: a new version, applied here and sent to every node */
  putConfig?: ConfigCapability['putConfig']
  /** `GET /v1/maintenance`: whether this node is in maintenance */
  maintenance?: MaintenanceCapability['maintenance']
  /** `PUT /v1/maintenance`: takes this node out of service (hands MASTER over, drains) or back */
  setMaintenance?: MaintenanceCapability['setMaintenance']
  /** `POST /v1/members/{id}/remove`: a dead member stops counting toward quorum on every node */
  removeMember?: MemberAdminCapability['removeMember']
  /** `GET /v1/events?since=`: the cluster events this source recorded (bounded) */
  events?: EventsCapability['events']
}
