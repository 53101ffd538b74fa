import type {
  BackendsView,
  ClusterStatus,
  HealthResponse,
  MasterResponse,
  MemberView,
  ReadyResponse,
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
}
