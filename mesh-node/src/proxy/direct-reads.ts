import { connect, createServer, Socket } from 'node:net'

/**
 * A read callback as net's `onread` calls it: `n` bytes are in `buffer` from offset 0, valid
 * until the callback returns. `false` stops reading (as `pause()` does) until `resume()`.
 */
export type DirectReadCallback = (n: number, buffer: Buffer) => boolean | undefined

/** Moves plain TCP sockets that `net.Server` accepted onto reads into a caller's buffer. */
export interface DirectReads {
  /**
   * Switches `socket` to direct reads: from now on its bytes go to `onRead` (its 'data' listeners
   * still get what was already buffered or is `unshift`ed later; 'end', 'close', `pause()`,
   * `resume()` and `bytesRead` work as before). False, and nothing changed, for a socket it cannot
   * take: TLS, already reading, or holding unread bytes.
   */
  attach(socket: Socket, buffer: Buffer, onRead: DirectReadCallback): boolean
}

/** The three fields `new Socket({ onread })` sets, found on a socket by their symbols' names. */
interface OnreadFields {
  readonly buffer: symbol
  readonly callback: symbol
  readonly generator: symbol
}

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void
  reading?: boolean
}

type Fields = Record<symbol, unknown>

function findFields(socket: Socket): OnreadFields | null {
  const bySymbolName = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]))
  const buffer = bySymbolName.get('kBuffer')
  const callback = bySymbolName.get('kBufferCb')
  const generator = bySymbolName.get('kBufferGen')
  if (buffer === undefined || callback === undefined || generator === undefined) return null
  const f = socket as unknown as Fields
  // a socket made without `onread` has all three null
  if (f[buffer] !== null || f[callback] !== null || f[generator] !== null) return null
  return { buffer, callback, generator }
}

function handleOf(socket: Socket): UserBufferHandle | null {
  const h = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle
  return typeof h?.useUserBuffer === 'function' ? (h as UserBufferHandle) : null
}

/**
 * Node gives `onread` (reads into one buffer, a plain callback per read: no Buffer, no stream
 * push, no 'data' event per chunk) only to sockets it creates for `connect()`, not to the ones
 * `net.Server` accepts. This sets on an accepted socket the three fields that option sets and
 * hands the buffer to its handle, as the Socket constructor does. Those are Node internals, so
 * `probeDirectReads()` checks them on a real loopback connection before a listener uses them.
 */
function directReadsWith(fields: OnreadFields): DirectReads {
  return {
    attach(socket, buffer, onRead) {
      if (socket.constructor !== Socket || socket.readableLength > 0 || socket.destroyed) return false
      const handle = handleOf(socket)
      if (handle === null || handle.reading === true) return false
      const f = socket as unknown as Fields
      if (f[fields.buffer] !== null) return false
      f[fields.buffer] = buffer
      f[fields.callback] = onRead
      handle.useUserBuffer(buffer)
      return true
    },
  }
}

export type DirectReadsProbe =
  | { readonly ok: true; readonly reads: DirectReads }
  | { readonly ok: false; readonly why: string }

const PROBE_TIMEOUT_MS = 2000

/**
 * Checks, on a loopback connection of its own, that an accepted socket switched to direct reads
 * gets its bytes in the callback and none as 'data', stops reading on `pause()`, reads again on
 * `resume()` and still ends with 'end'. Any difference (another Node version's internals) is a
 * `why`, and the caller keeps 'data' events.
 */
export async function probeDirectReads(signal?: AbortSignal): Promise<DirectReadsProbe> {
  const fields = findFields(new Socket())
  if (fields === null)
    return { ok: false, why: 'net.Socket has no onread fields (kBuffer, kBufferCb, kBufferGen)' }
  const reads = directReadsWith(fields)
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true })
  const sockets: Socket[] = []
  const timeout = AbortSignal.timeout(PROBE_TIMEOUT_MS)
  const stop = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail)
      server.listen(0, '127.0.0.1', () => done())
    })
    const address = server.address()
    if (address === null || typeof address === 'string')
      return { ok: false, why: 'probe listener has no port' }
    const accepted = new Promise<Socket>((done) => server.once('connection', done))
    const client = connect({ host: '127.0.0.1', port: address.port })
    sockets.push(client)
    client.on('error', () => undefined)
    const peer = await abortable(accepted, stop)
    sockets.push(peer)
    peer.on('error', () => undefined)
    const handle = handleOf(peer)
    if (handle === null) return { ok: false, why: 'accepted socket has no useUserBuffer' }

    const got: string[] = []
    let dataEvents = 0
    let wake: (() => void) | null = null
    const buffer = Buffer.alloc(64)
    peer.on('data', () => dataEvents++)
    const ended = new Promise<void>((done) => peer.once('end', done))
    if (
      !reads.attach(peer, buffer, (n, b) => {
        got.push(b.toString('latin1', 0, n))
        peer.pause()
        wake?.()
        return undefined
      })
    )
      return { ok: false, why: 'attach refused a fresh accepted socket' }
    const nextRead = () => new Promise<void>((done) => (wake = done))

    let read = nextRead()
    peer.resume()
    client.write('ping')
    await abortable(read, stop)
    if (got.join('') !== 'ping') return { ok: false, why: `read ${JSON.stringify(got)}, not "ping"` }
    if (handle.reading !== false) return { ok: false, why: 'pause() did not stop reading' }

    read = nextRead()
    client.write('pong')
    peer.resume()
    await abortable(read, stop)
    if (got.join('') !== 'pingpong') return { ok: false, why: `read ${JSON.stringify(got)} after resume()` }
    peer.resume()
    client.end()
    await abortable(ended, stop)
    if (dataEvents !== 0) return { ok: false, why: `${dataEvents} 'data' events beside the callback` }
    return { ok: true, reads }
  } catch (e) {
    return { ok: false, why: e instanceof Error ? e.message : String(e) }
  } finally {
    for (const s of sockets) s.destroy()
    server.close()
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((done, fail) => {
    if (signal.aborted) return fail(new Error('probe timed out'))
    const onAbort = () => fail(new Error('probe timed out'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        done(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        fail(e)
      },
    )
  })
}

let shared: Promise<DirectReadsProbe> | null = null

/** The probe, run once per process. */
export function directReads(): Promise<DirectReadsProbe> {
  shared ??= probeDirectReads()
  return shared
}
