export { type ControlApiOptions, createControlApi } from './app.js'
export { type ApiAuth, requireToken } from './auth.js'
export type { ClusterSource, MetricsText } from './cluster-source.js'
export { apiError } from './errors.js'
