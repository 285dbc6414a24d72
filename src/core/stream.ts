import {PassThrough, pipeline, type Readable} from 'node:stream'

/**
 * Takes hold of a readable now, before the caller's first `await`, so that no byte is lost
 * while the caller is still getting ready to read it.
 *
 * Why: when a child process exits, Node puts its stdout into flowing mode if nobody reads it yet
 * (child_process' flushStdio), and what then flows is discarded. A short `tar | zstd` can end
 * while a put is still waiting for the store (S3's existence check, a mkdir): the part was then
 * stored empty, with a checksum that matched the empty object, and `backup verify` said it was
 * fine. A PassThrough piped now keeps every byte; backpressure pauses the source once its buffer
 * is full, so nothing grows without bound. A source that ends early or fails fails the held
 * stream too (pipeline), so the reader never waits for bytes that will not come.
 */
export function holdReadable(source: Readable): Readable {
  // storePart holds a part's stream before its own awaits and the storage's put holds what it is
  // given: a stream already held is returned as it is, not copied through a second buffer
  if (heldStreams.has(source)) return source
  const held = new PassThrough()
  pipeline(source, held, () => {})
  heldStreams.add(held)
  return held
}

const heldStreams = new WeakSet<Readable>()
