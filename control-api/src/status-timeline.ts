import type { AggregateView, ClusterEvent, EventsView } from '@pgmesh/protocol'
import { badge, DASH, type Html, html, table } from './status-html.js'

/** Entries shown; the API (`/v1/events`) has the whole log. */
const TIMELINE_MAX = 40

function clock(iso: string): string {
  const t = iso.slice(11, 19)
  return t.length === 8 ? t : iso
}

const KIND: Readonly<Record<ClusterEvent['kind'], string>> = {
  master: 'master',
  primary: 'master',
  config: 'ok',
  member: 'warn',
  maintenance: 'warn',
}

function describe(e: ClusterEvent): Html {
  switch (e.kind) {
    case 'master':
      return html`MASTER <b class="id">${e.from ?? 'none'}</b> → <b class="id" data-testid="event-to">${
        e.to ?? 'none'
      }</b> <span class="muted">(${e.cause}: ${e.detail}; term ${e.term})</span>`
    case 'primary':
      return html`primary <b class="id">${e.from ?? 'none'}</b> → <b class="id">${e.to ?? 'none'}</b>${
        e.timeline === null ? '' : html` <span class="muted">timeline ${e.timeline}</span>`
      }`
    case 'config':
      return html`config version <b>${e.version}</b> <span class="muted">from ${e.origin} · ${e.hash.slice(0, 12)}</span>`
    case 'member':
      return html`<span class="id">${e.member}</span> ${e.change}${
        e.from === null ? '' : html` <span class="muted">(was ${e.from})</span>`
      }`
    case 'maintenance':
      return html`<span class="id">${e.member}</span> ${e.enabled ? 'in maintenance' : 'back from maintenance'}${
        e.reason === null ? '' : html` <span class="muted">${e.reason}</span>`
      }`
  }
}

/** The cluster's events, newest first. */
export function timeline(events: EventsView | undefined): Html {
  if (events === undefined) return html``
  const shown = events.events.slice(-TIMELINE_MAX).reverse()
  const items =
    shown.length === 0
      ? html`<li class="muted">no changes seen yet (recorded by ${events.source} since it started)</li>`
      : shown.map(
          (e) =>
            html`<li data-testid="event" data-kind="${e.kind}" data-seq="${e.seq}"${
              e.kind === 'master' ? html` data-cause="${e.cause}"` : ''
            }><time datetime="${e.at}">${clock(e.at)}</time> ${badge(e.kind, KIND[e.kind])} ${describe(e)}</li>`,
        )
  return html`<section id="timeline"><h2>Timeline <span class="muted">recorded by ${events.source}${
    events.truncated ? ' · older events dropped' : ''
  }</span></h2><ol class="timeline" data-testid="timeline">${items}</ol></section>`
}

/** The control plane's own section: how each node answered, and where they disagree. */
export function nodesSection(a: AggregateView | undefined): Html {
  if (a === undefined) return html``
  const rows = a.nodes.map(
    (n) => html`<tr data-testid="cp-node" data-url="${n.url}" data-reachable="${n.reachable}"${
      n.id === null ? '' : html` data-node-id="${n.id}"`
    }>
<td class="id">${n.id ?? DASH}</td><td>${n.reachable ? badge('answers', 'ok') : badge('unreachable', 'bad')}</td>
<td>${n.latencyMs === null ? DASH : `${n.latencyMs} ms`}</td><td>${n.state ?? DASH}</td><td>${n.master ?? DASH}</td>
<td>${n.term ?? DASH}</td><td>${n.configVersion ?? DASH}</td><td>${n.primary ?? DASH}</td>
<td class="id">${n.url}</td><td>${n.error === null ? DASH : html`<span class="warn">${n.error.code}</span> ${n.error.message}`}</td></tr>`,
  )
  const splits = a.disagreements.map((d) => html`<li>${d}</li>`)
  return html`<section id="nodes"><h2>Nodes <span class="muted" data-testid="cp-reachable">${a.reachable} of ${
    a.total
  } answer</span></h2>${
    splits.length === 0 ? '' : html`<ul class="warn" data-testid="disagreements">${splits}</ul>`
  }${table('cp-nodes', ['node', 'answer', 'latency', 'state', 'MASTER seen', 'term', 'config', 'primary seen', 'API', 'error'], rows)}</section>`
}
