export { DEFAULT_EVENT_CAPACITY, EventRing } from './event-ring.js'
export { diffViews, type MemberSnapshot, snapshotOf, type ViewSnapshot } from './view-diff.js'
export { ViewEventLog } from './view-event-log.js'
