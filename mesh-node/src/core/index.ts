export { ChangeEmitter } from './changes.js'
export { cancelAll, systemClock } from './clock.js'
export type * from './contracts.js'
