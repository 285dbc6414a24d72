import net from 'node:net'

/**
 * A TCP port that is free on 127.0.0.1 right now (the OS picks it: bind to port 0,
 * read the port, close). Another process may take it before the caller binds it,
 * so servers that cannot bind port 0 themselves should retry on EADDRINUSE.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({host, port: 0, exclusive: true}, () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error(`freePort: unexpected address ${String(address)}`))
        return
      }
      const {port} = address
      server.close((error) => (error ? reject(error) : resolve(port)))
    })
  })
}

/** True when something accepts TCP connections on host:port. */
export async function isListening(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({host, port})
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}
