/** test/support: real PostgreSQL, Redis, S3 and Chroma servers for tests (DESIGN.md §7). */
export * from './binaries.js';
export * from './ports.js';
export * from './process.js';
export * from './postgres.js';
export * from './redis.js';
export * from './s3.js';
export * from './chroma.js';
export * from './shared.js';
export type {SharedChromaInfo} from './context.js';
export * from './prometheus.js';
export * from './hashes.js';
export * from './cli.js';
