import { connect } from 'node:net'

/** Whether the database port accepts a TCP connection: the cheapest liveness signal. */
export interface TcpObservation {
  readonly reachable: boolean
  readonly error: string | null
}

/** One connect, closed at once. Never throws. */
export function probeTcp(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<TcpObservation> {
  if (signal?.aborted === true) return Promise.resolve({ reachable: false, error: 'aborted' })
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let settled = false
    const done = (o: TcpObservation) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(o)
    }
    const onAbort = () => done({ reachable: false, error: 'aborted' })
    const timer = setTimeout(
      () => done({ reachable: false, error: `no connect within ${timeoutMs} ms` }),
      timeoutMs,
    )
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => done({ reachable: true, error: null }))
    socket.once('error', (e) => done({ reachable: false, error: e.message }))
  })
}
