export { type ControlApiOptions, createControlApi } from './app.js'
export { type ApiAuth, requireBearer, requireToken } from './auth.js'
export type {
  Awaitable,
  ClusterReads,
  ClusterSource,
  ConfigCapability,
  EventsCapability,
  MaintenanceCapability,
  MemberAdminCapability,
  MetricsCapability,
  MetricsText,
  RequestContext,
} from './cluster-source.js'
export { apiError, SourceError, statusOf } from './errors.js'
export {
  DEFAULT_EVENT_CAPACITY,
  diffViews,
  EventRing,
  type MemberSnapshot,
  snapshotOf,
  ViewEventLog,
  type ViewSnapshot,
} from './events/index.js'
export { type JsonBodyEnv, type JsonBodyOptions, jsonBody } from './json-body.js'
export {
  type AggregatedView,
  aggregate,
  agreement,
  type ControlPlane,
  type ControlPlaneDeps,
  callNode,
  createControlPlane,
  type FetchLike,
  mergeExpositions,
  type NodeAnswer,
  type NodeView,
  RemoteCluster,
  type RemoteClusterOptions,
  type RemoteNode,
} from './remote/index.js'
