// A stand-in for the service behind the VIP: answers every connection with this host's name.
// SIGHUP closes the listening socket (the service "fails": connections are refused), SIGUSR2
// opens it again, so a test can time a tracked check without a process start in the measurement.
// usage: serve-id.ts NAME PORT
import { createServer, type Server } from 'node:net'

const [name = 'unknown', port = '5000'] = process.argv.slice(2)
let server: Server | null = null

// '::' without ipv6Only: the IPv4 VIP (and the 127.0.0.1 check) and an IPv6 VIP alike
function listen(): void {
  if (server !== null) return
  const s = createServer((c) => {
    c.on('error', () => undefined)
    c.end(`${name}\n`)
  })
  server = s
  s.listen({ port: Number(port), host: '::', ipv6Only: false }, () =>
    process.stdout.write(`serving ${name} on ${port}\n`),
  )
}

process.on('SIGHUP', () => {
  server?.close()
  server = null
  process.stdout.write('stopped serving\n')
})
process.on('SIGUSR2', listen)
listen()
// with the socket closed nothing else keeps the process alive between the two signals
setInterval(() => undefined, 60_000)
