import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseCommandLine } from './args.js'
import { runOperatorCommand } from './operator-command.js'
import { formatStatus } from './status-table.js'

describe('pgmesh maintenance / members: arguments', () => {
  it('parses maintenance on|off and members remove ID', () => {
    assert.deepEqual(
      parseCommandLine(['maintenance', 'on', '--reason', 'kernel upgrade', '--api', '10.0.0.1:7947']),
      {
        ok: true,
        command: {
          kind: 'operator',
          action: 'maintenance',
          enabled: true,
          reason: 'kernel upgrade',
          api: 'http://10.0.0.1:7947',
          tokenFile: undefined,
          json: false,
        },
      },
    )
    const off = parseCommandLine(['maintenance', 'off', '--token-file', '/t'])
    assert.ok(off.ok && off.command.kind === 'operator' && off.command.action === 'maintenance')
    assert.equal(off.command.enabled, false)
    assert.equal(off.command.tokenFile, '/t')
    assert.equal(off.command.api, 'http://127.0.0.1:7947')
    assert.deepEqual(parseCommandLine(['members', 'remove', 'n3', '--api', 'http://h:1/', '--json']), {
      ok: true,
      command: {
        kind: 'operator',
        action: 'remove',
        id: 'n3',
        api: 'http://h:1',
        tokenFile: undefined,
        json: true,
      },
    })
  })

  it('refuses what it cannot mean', () => {
    for (const argv of [
      ['maintenance'],
      ['maintenance', 'maybe'],
      ['maintenance', 'off', '--reason', 'x'],
      ['maintenance', 'on', 'extra'],
      ['members'],
      ['members', 'remove'],
      ['members', 'remove', 'a', 'b'],
      ['members', 'remove', 'a', '--reason', 'x'],
    ]) {
      assert.equal(parseCommandLine(argv).ok, false, argv.join(' '))
    }
  })
})

describe('pgmesh maintenance / members: talking to the API', () => {
  let server: Server
  let api = ''
  let dir = ''
  const seen: { method: string; url: string; auth: string | undefined; body: string }[] = []
  const body = async (req: IncomingMessage) => {
    let b = ''
    for await (const chunk of req) b += String(chunk)
    return b
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-opcli-'))
    server = createServer(async (req, res) => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        auth: req.headers.authorization,
        body: await body(req),
      })
      res.setHeader('content-type', 'application/json')
      if (req.url === '/v1/maintenance') {
        res.end(
          JSON.stringify({
            node: 'n1',
            enabled: true,
            reason: 'kernel upgrade',
            since: new Date(0).toISOString(),
            activeSessions: 3,
          }),
        )
      } else if (req.url === '/v1/members/n3/remove') {
        res.end(JSON.stringify({ removed: 'n3', incarnation: 5, voters: ['n1', 'n2', 'n3'] }))
      } else {
        res.statusCode = 409
        res.end(JSON.stringify({ error: { code: 'MEMBER_NOT_DEAD', message: 'n2 is alive on this node' } }))
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    api = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  after(async () => {
    await new Promise((r) => server.close(r))
    await rm(dir, { recursive: true, force: true })
  })

  const io = () => {
    const o = { out: '', err: '' }
    const io = {
      out: (t: string) => {
        o.out += t
      },
      err: (t: string) => {
        o.err += t
      },
    }
    return { o, io }
  }

  it('PUTs the maintenance body with the token from --token-file and prints the state', async () => {
    const tokenFile = join(dir, 'token')
    await writeFile(tokenFile, '# comment\nsecret-token\n')
    const { o, io: out } = io()
    const code = await runOperatorCommand(
      { action: 'maintenance', enabled: true, reason: 'kernel upgrade', api, tokenFile, json: false },
      out,
    )
    assert.equal(code, 0, o.err)
    assert.deepEqual(seen.at(-1), {
      method: 'PUT',
      url: '/v1/maintenance',
      auth: 'Bearer secret-token',
      body: '{"enabled":true,"reason":"kernel upgrade"}',
    })
    assert.match(o.out, /n1 is in maintenance .*kernel upgrade.*3 session\(s\) draining/)
  })

  it('POSTs a removal; a refusal prints the code and exits 2', async () => {
    const ok = io()
    assert.equal(
      await runOperatorCommand({ action: 'remove', id: 'n3', api, tokenFile: undefined, json: false }, ok.io),
      0,
    )
    assert.equal(seen.at(-1)?.method, 'POST')
    assert.match(ok.o.out, /removed n3 \(incarnation 5\)/)
    const refused = io()
    assert.equal(
      await runOperatorCommand(
        { action: 'remove', id: 'n2', api, tokenFile: undefined, json: false },
        refused.io,
      ),
      2,
    )
    assert.match(refused.o.err, /409 MEMBER_NOT_DEAD: n2 is alive/)
    const missing = io()
    assert.equal(
      await runOperatorCommand(
        { action: 'remove', id: 'n3', api, tokenFile: join(dir, 'nope'), json: false },
        missing.io,
      ),
      2,
    )
    assert.match(missing.o.err, /cannot read .*nope: ENOENT/)
  })
})

describe('pgmesh status: maintenance and removals', () => {
  it('marks a member in maintenance and lists removed members', () => {
    const member = (id: string, maintenance: { reason: string | null; since: string } | null) => ({
      id,
      peerId: `p-${id}`,
      self: id === 'n1',
      state: 'alive' as const,
      priority: 100,
      incarnation: 1,
      addrs: [],
      api: null,
      lastHeardAt: null,
      lastHeardAgoMs: id === 'n1' ? null : 10,
      stateSince: new Date(0).toISOString(),
      configVersion: 1,
      maintenance,
      election: {
        term: 2,
        effectivePriority: 100,
        eligible: maintenance === null,
        holder: false,
        leader: 'n2',
        failingChecks: [],
      },
    })
    const out = formatStatus({
      cluster: 'c',
      version: '1',
      self: 'n1',
      generatedAt: new Date(0).toISOString(),
      members: [
        member('n1', { reason: 'kernel upgrade', since: '2024-01-01T00:00:00.000Z' }),
        member('n2', null),
      ],
      counts: { alive: 2, suspect: 0, dead: 0, left: 0 },
      gossip: { connectedPeers: 1, topicPeers: 1, messagesIn: 0, messagesOut: 0, dropped: {} },
      election: {
        quorum: 'majority',
        state: 'FAULT',
        role: 'follower',
        term: 2,
        master: 'n2',
        vipHolders: ['n2'],
        vip: { address: null, driver: 'none', held: false },
        leaseRemainingMs: null,
        priority: 100,
        effectivePriority: 100,
        eligible: false,
        failingChecks: [],
        checks: [],
        voters: { voters: ['n1', 'n2'], prev: null },
        masterChanges: 1,
      },
      listeners: [],
      removed: [{ id: 'n3', incarnation: 7, removedAt: '2024-01-01T00:00:01.000Z' }],
    })
    assert.match(out, /n1 \*\s+alive\s+MAINTENANCE\s/)
    assert.match(out, /n2\s+alive\s+BACKUP\s/)
    assert.match(out, /n1 in maintenance since 2024-01-01T00:00:00\.000Z: kernel upgrade/)
    assert.match(out, /removed by an operator: n3 \(incarnation 7, 2024-01-01T00:00:01\.000Z\)/)
  })
})
