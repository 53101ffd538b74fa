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
export { apiError, statusOf } from './errors.js'
export { type JsonBodyEnv, type JsonBodyOptions, jsonBody } from './json-body.js'
