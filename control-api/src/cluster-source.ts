import type {
  BackendsView,
  ClusterStatus,
  ConfigPutBody,
  ConfigPutResponse,
  ConfigView,
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
 * What the control API reads from. mesh-node implements it over the live node; tests and
 * other runtimes may implement it over anything that can produce the same shapes.
 */
export interface ClusterSource {
  status(): ClusterStatus
  members(): readonly MemberView[]
  health(): HealthResponse
  ready(): ReadyResponse
  /** whether this node is the MASTER (holds the VIP lease) now */
  master(): MasterResponse
  /** the database nodes as this node and its peers see them, and the agreed roles */
  backends(): BackendsView
  /** `GET /metrics`; a source without metrics answers 404 there */
  metrics?(): Promise<MetricsText>
  /** `GET /v1/config`: the cluster config this node runs, with its version and origin */
  config?(): ConfigView
  /** `PUT /v1/config`: a new version, applied here and sent to every node */
  putConfig?(body: ConfigPutBody): Promise<Result<ConfigPutResponse>>
  /** `GET /v1/maintenance`: whether this node is in maintenance */
  maintenance?(): MaintenanceView
  /** `PUT /v1/maintenance`: takes this node out of service (hands MASTER over, drains) or back */
  setMaintenance?(body: MaintenancePutBody): Promise<Result<MaintenanceView>>
  /** `POST /v1/members/{id}/remove`: a dead member stops counting toward quorum on every node */
  removeMember?(id: string): Promise<Result<MemberRemoveResponse>>
}
