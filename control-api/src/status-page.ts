import type { BackendsView, ClusterStatus, EventsView, ListenerStatus, MemberView } from '@pgmesh/protocol'

/**
 * The live status page (`GET /`): server-rendered HTML, no assets, no build step. Every value
 * from the cluster goes through `html`, which escapes whatever it interpolates: node ids, check
 * errors and addresses arrive from the network.
 */

import { CHART_SCRIPT, CHART_STYLE, chartPoint, chartsSection } from './status-charts.js'
import { ago, badge, bytes, DASH, Html, html, orDash, table } from './status-html.js'
import { nodesSection, timeline } from './status-timeline.js'

export { escapeHtml } from './status-html.js'

// ---- summary -------------------------------------------------------------------------------

function agreedBy(s: ClusterStatus): Html {
  const a = s.aggregate
  if (a === undefined) return html``
  const votes = a.master.answers.find((x) => x.value === a.master.agreed)?.nodes.length ?? 0
  return a.master.agreed === null
    ? html`<span class="warn" data-testid="no-majority">no majority of ${a.total} nodes agrees</span> · `
    : html`agreed by ${votes} of ${a.total} nodes · `
}

function self(s: ClusterStatus): Html {
  const e = s.election
  const a = s.aggregate
  if (a !== undefined) {
    const kind = a.reachable === a.total ? 'ok' : a.reachable * 2 > a.total ? 'warn' : 'bad'
    return html`<div class="card"><div class="label">control plane</div><div class="big" data-testid="self">${s.self}</div>
<div class="sub">${badge(`${a.reachable} of ${a.total} nodes answer`, kind)}${
      a.base === null ? '' : html` · members and databases as ${a.base} sees them`
    }</div></div>`
  }
  return html`<div class="card"><div class="label">this node</div><div class="big" data-testid="self">${s.self}</div>
<div class="sub">${e.state} · priority ${e.effectivePriority}${e.effectivePriority === e.priority ? '' : ` (${e.priority})`}${
    e.eligible ? '' : ' · not eligible'
  }${e.leaseRemainingMs === null ? '' : ` · lease ${e.leaseRemainingMs} ms`}</div></div>`
}

function summary(s: ClusterStatus): Html {
  const e = s.election
  const vip = e.vip.address === null ? 'no VIP configured' : e.vip.address
  const holders = e.vipHolders.length === 0 ? 'nobody' : e.vipHolders.join(', ')
  const split =
    e.vipHolders.length > 1
      ? html`<p class="warn" data-testid="split-brain">${holders} all hold the VIP</p>`
      : ''
  return html`<section id="summary" class="cards">
<div class="card"><div class="label">MASTER</div><div class="big" id="master" data-testid="master">${e.master ?? 'none'}</div>
<div class="sub">${agreedBy(s)}term ${e.term} · quorum ${e.quorum} · ${e.masterChanges} change(s) seen</div></div>
<div class="card"><div class="label">VIP</div><div class="big" data-testid="vip">${vip}</div>
<div class="sub">held by <span data-testid="vip-holders">${holders}</span> · driver ${e.vip.driver}</div></div>
${self(s)}
</section>${split}`
}

// ---- members -------------------------------------------------------------------------------

function memberRole(m: MemberView, master: string | null): Html {
  if (m.id === master) return badge('MASTER', 'master')
  if (m.maintenance !== null) return badge('MAINTENANCE', 'warn')
  if (m.election === null) return html`${DASH}`
  if (m.election.holder) return badge('VIP', 'warn')
  return m.election.eligible ? badge('BACKUP', 'ok') : badge('FAULT', 'bad')
}

function priorityCell(m: MemberView): Html {
  const eff = m.election?.effectivePriority
  if (eff === undefined || eff === m.priority) return html`${m.priority}`
  return html`${eff} <span class="muted">(base ${m.priority})</span>`
}

const STATE_KIND: Readonly<Record<MemberView['state'], string>> = {
  alive: 'ok',
  suspect: 'warn',
  dead: 'bad',
  left: 'muted',
}

function memberRow(m: MemberView, master: string | null): Html {
  const failing =
    m.election === null || m.election.failingChecks.length === 0 ? DASH : m.election.failingChecks.join(', ')
  return html`<tr data-testid="member" data-member-id="${m.id}" data-state="${m.state}" data-master="${
    m.id === master
  }">
<td class="id">${m.id}${m.self ? html` <span class="muted">(this node)</span>` : ''}</td>
<td>${memberRole(m, master)}</td><td>${badge(m.state, STATE_KIND[m.state])}</td><td>${priorityCell(m)}</td>
<td>${failing}</td><td>${m.configVersion}</td><td>${m.self ? 'self' : ago(m.lastHeardAgoMs)}</td>
<td>${orDash(m.api)}</td><td>${m.incarnation}</td></tr>`
}

function members(s: ClusterStatus): Html {
  const c = s.counts
  const rows = s.members.map((m) => memberRow(m, s.election.master))
  return html`<section><h2>Members <span class="muted">${c.alive} alive, ${c.suspect} suspect, ${c.dead} dead, ${
    c.left
  } left</span></h2>
${table('members', ['id', 'role', 'state', 'priority', 'failing checks', 'config', 'last heard', 'API', 'incarnation'], rows)}
<p class="muted">gossip: ${s.gossip.connectedPeers} connected, ${s.gossip.topicPeers} exchanging, ${
    s.gossip.messagesIn
  } in, ${s.gossip.messagesOut} out</p></section>`
}

function checks(s: ClusterStatus): Html {
  const list = s.election.checks
  if (list.length === 0) return html``
  const rows = list.map(
    (k) => html`<tr data-testid="check" data-check="${k.name}"><td class="id">${k.name}</td><td>${k.kind}</td>
<td>${k.weight}</td><td>${!k.ran ? badge('not run', 'warn') : k.passing ? badge('passing', 'ok') : badge('failing', 'bad')}</td>
<td>${orDash(k.lastError)}</td><td>${orDash(k.lastRunAt)}</td></tr>`,
  )
  return html`<section><h2>Checks on ${s.aggregate?.base ?? s.self}</h2>${table('checks', ['check', 'kind', 'weight', 'result', 'last error', 'last run'], rows)}</section>`
}

// ---- databases -----------------------------------------------------------------------------

type Database = BackendsView['databases'][number]
type Local = Database['local']

const DB_KIND: Readonly<Record<Local['state'], string>> = {
  primary: 'master',
  replica: 'ok',
  up: 'ok',
  down: 'bad',
}

function agreedRole(b: BackendsView, name: string): string {
  if (b.agreed.primary === name) return 'primary'
  if (b.agreed.replicas.some((r) => r.db === name)) return 'replica'
  return b.agreed.up.includes(name) ? 'up' : 'not routed'
}

function agreedLag(b: BackendsView, name: string): number | null {
  return b.agreed.replicas.find((r) => r.db === name)?.lagBytes ?? null
}

function postgresProbe(pg: Local['postgres']): string {
  if (pg === null) return DASH
  if (!pg.reachable) return `unreachable: ${orDash(pg.error)}`
  return `${pg.writable ? 'writable' : 'read-only'}, TL ${orDash(pg.timeline)}, lag ${bytes(pg.lagBytes)}`
}

function patroniProbe(pa: Local['patroni']): string {
  if (pa === null) return DASH
  if (!pa.reachable) return `unreachable: ${orDash(pa.error)}`
  const state = pa.state === null ? '' : ` (${pa.state})`
  return `${pa.role}${state}, TL ${orDash(pa.timeline)}, lag ${bytes(pa.lagBytes)}`
}

function tcpProbe(tcp: Local['tcp']): string {
  if (tcp === null) return DASH
  return tcp.reachable ? 'reachable' : `unreachable: ${orDash(tcp.error)}`
}

function probeCells(local: Local): Html {
  return html`<td>${postgresProbe(local.postgres)}</td><td>${patroniProbe(local.patroni)}</td><td>${tcpProbe(local.tcp)}</td>`
}

const ROLE_KIND: Readonly<Record<string, string>> = { primary: 'master', replica: 'ok', up: 'ok' }

function databaseCard(b: BackendsView, d: Database): Html {
  const role = agreedRole(b, d.name)
  const local = html`<tr data-testid="observer" data-observer="${b.node}"><td class="id">${b.node} <span class="muted">(this node)</span></td>
<td>${badge(d.local.state, DB_KIND[d.local.state])}</td><td>${orDash(d.local.timeline)}</td><td>${bytes(d.local.lagBytes)}</td>
<td>${ago(d.local.ageMs)}</td>${probeCells(d.local)}</tr>`
  const others = d.observers
    .filter((o) => o.node !== b.node)
    .map(
      (o) => html`<tr data-testid="observer" data-observer="${o.node}"><td class="id">${o.node}</td>
<td>${badge(o.state, DB_KIND[o.state])}</td><td>${orDash(o.timeline)}</td><td>${DASH}</td><td>${ago(o.ageMs)}</td>
<td>${DASH}</td><td>${DASH}</td><td>${DASH}</td></tr>`,
    )
  return html`<div class="db" data-testid="database" data-db="${d.name}" data-role="${role}">
<h3><span class="id">${d.name}</span> ${badge(role, ROLE_KIND[role] ?? 'bad')}
<span class="muted">${d.address} · timeline ${orDash(
    role === 'primary' ? b.agreed.primaryTimeline : d.local.timeline,
  )} · lag ${bytes(role === 'replica' ? agreedLag(b, d.name) : d.local.lagBytes)}</span></h3>
${table('', ['seen by', 'state', 'timeline', 'lag', 'age', 'PostgreSQL probe', 'Patroni probe', 'TCP probe'], [local, ...others])}
</div>`
}

function databases(b: BackendsView): Html {
  const notes = b.agreed.notes.map((n) => html`<li>${n}</li>`)
  const body =
    b.databases.length === 0
      ? html`<p class="muted">no databases configured</p>`
      : b.databases.map((d) => databaseCard(b, d))
  return html`<section id="databases"><h2>Databases <span class="muted">primary <span data-testid="primary">${orDash(
    b.agreed.primary,
  )}</span></span></h2>${notes.length === 0 ? '' : html`<ul class="warn">${notes}</ul>`}${body}</section>`
}

// ---- listeners -----------------------------------------------------------------------------

/** Refusals by reason, the most-limited sources and the stick table: each bounded by the status. */
function listenerPolicy(l: ListenerStatus): Html | string {
  const p = l.policy
  if (p === undefined) return DASH
  const refused = Object.entries(p.refused)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`)
  const limited = p.limited.slice(0, 3).map((x) => html`<span class="id">${x.source}</span> (${x.refused})`)
  return html`<div data-testid="listener-refused">refused: ${refused.length === 0 ? 'none' : refused.join(', ')}</div>${
    limited.length === 0 ? '' : html`<div data-testid="listener-limited">limited: ${limited}</div>`
  }${p.stick === null ? '' : html`<div>sticky: ${p.stick.entries} / ${p.stick.maxEntries}</div>`}`
}

function listenerRow(l: ListenerStatus): Html {
  const backends =
    l.backends.length === 0
      ? DASH
      : l.backends.map(
          (bk) =>
            html`<div data-testid="listener-backend" data-backend="${bk.id}"><span class="id">${bk.id}</span>: ${bk.active} active, ${bk.total} total, ${bk.connectErrors} errors, ${bytes(bk.bytesIn)} in, ${bytes(bk.bytesOut)} out</div>`,
        )
  return html`<tr data-testid="listener" data-listener="${l.name}"><td class="id">${l.name}</td><td>${l.bind}</td>
<td>${l.role}</td><td>${l.balance}</td><td data-testid="listener-active">${l.active}</td><td>${l.total}</td>
<td>${l.queued}</td><td>${l.refused}</td><td>${l.queueTimeouts}</td><td>${l.connectErrors}</td><td>${l.cut}</td>
<td>${tlsCell(l)}</td><td>${backends}</td><td data-testid="listener-policy">${listenerPolicy(l)}</td></tr>`
}

function tlsCell(l: ListenerStatus): Html | string {
  const t = l.tls
  if (t === undefined) return DASH
  const c = t.certificate
  if (c === null) return html`${t.mode}`
  const days = Math.floor(c.expiresInMs / 86_400_000)
  const expiry = html`<span class="${c.expiryWarning ? 'warn' : ''}" data-testid="listener-cert-expiry">expires ${c.notAfter.slice(0, 10)} (${days} d)</span>`
  return html`${t.mode}, backend ${t.backend}<br>${expiry}`
}

function listeners(s: ClusterStatus): Html {
  const head = ['listener', 'bind', 'role', 'balance', 'active', 'total', 'queued', 'refused']
  const rest = ['queue timeouts', 'connect errors', 'cut', 'tls', 'backends', 'policy']
  const body =
    s.listeners.length === 0
      ? html`<p class="muted">no listeners configured</p>`
      : table('listeners', [...head, ...rest], s.listeners.map(listenerRow))
  const where = s.aggregate === undefined ? `on ${s.self}` : 'on every node (node/listener)'
  return html`<section id="listeners-section"><h2>Listeners ${where}</h2>${body}</section>`
}

// ---- page ----------------------------------------------------------------------------------

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--line:#d8dde3;--muted:#6a737d;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--master:#0550ae}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--card:#161b22;--line:#30363d;--muted:#8b949e;
--ok:#3fb950;--bad:#f85149;--warn:#d29922;--master:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;padding:12px;font:14px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}
main{max-width:1200px;margin:0 auto}
h1{font-size:1.2rem;margin:0 0 4px}h2{font-size:1.05rem;margin:20px 0 8px}h3{font-size:.95rem;margin:12px 0 6px}
.muted{color:var(--muted);font-weight:normal}.warn{color:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px}
.card,.db{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;min-width:0}
.db{margin-bottom:8px}
.label{font-size:.75rem;text-transform:uppercase;color:var(--muted)}.big{font-size:1.3rem;font-weight:600}
.sub{font-size:.8rem;color:var(--muted)}
.scroll{max-width:100%;overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:8px;background:var(--card)}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 8px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
td div{white-space:nowrap}
th{font-size:.75rem;text-transform:uppercase;color:var(--muted)}
.id{font-family:ui-monospace,monospace}
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:.75rem;font-weight:600;border:1px solid currentColor}
.badge.ok{color:var(--ok)}.badge.bad{color:var(--bad)}.badge.warn{color:var(--warn)}.badge.master{color:var(--master)}
.badge.muted{color:var(--muted)}
#refresh-state[data-stale="true"]{color:var(--bad)}
`

const REFRESH_MS = 2000

// Swaps in a freshly fetched body instead of reloading, so window and table scroll positions survive.
const SCRIPT = `${CHART_SCRIPT};
(() => {
  const every = ${REFRESH_MS}
  document.addEventListener('DOMContentLoaded', () => pgmeshCharts.update())
  async function tick() {
    const ctl = new AbortController()
    const timer = setTimeout(() => ctl.abort(), 5000)
    try {
      const res = await fetch(location.href, { cache: 'no-store', signal: ctl.signal })
      if (!res.ok) throw new Error('HTTP ' + res.status)
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html')
      const scrolls = Array.from(document.querySelectorAll('.scroll'), (e) => e.scrollLeft)
      document.body.innerHTML = doc.body.innerHTML
      document.querySelectorAll('.scroll').forEach((e, i) => { e.scrollLeft = scrolls[i] || 0 })
      document.title = doc.title
      pgmeshCharts.update()
    } catch (e) {
      const s = document.getElementById('refresh-state')
      if (s) { s.textContent = 'update failed (' + (e && e.message ? e.message : e) + '), retrying'; s.dataset.stale = 'true' }
    } finally {
      clearTimeout(timer)
      setTimeout(tick, every)
    }
  }
  setTimeout(tick, every)
})()`

/** The whole status page: one node's view of the cluster, or the control plane's aggregate. */
export function renderStatusPage(status: ClusterStatus, backends: BackendsView, events?: EventsView): string {
  const title = `pgmesh ${status.cluster} · MASTER ${status.election.master ?? 'none'}`
  return `<!doctype html>${html`<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<noscript><meta http-equiv="refresh" content="5"></noscript>
<style>${new Html(STYLE + CHART_STYLE)}</style>
<script>${new Html(SCRIPT)}</script>
</head><body><main data-generated-at="${status.generatedAt}">
<header><h1>pgmesh <span class="id" data-testid="cluster">${status.cluster}</span></h1>
<div class="sub">seen from ${status.self} · pgmesh ${status.version} · <span id="refresh-state">updated ${
    status.generatedAt
  }</span></div></header>
${summary(status)}${timeline(events)}${chartsSection(chartPoint(status, backends), status.aggregate !== undefined)}
${nodesSection(status.aggregate)}${members(status)}${checks(status)}${databases(backends)}${listeners(status)}
</main></body></html>`}`
}
