/**
 * The import rules of docs/design-notes.md ("Layers"), checked by `npm run lint`:
 *
 *   commands/ → src/cli → src/<domain> → src/{postgres,redis,chroma,s3,repository,stack} → src/config → src/output → src/core
 *
 * An arrow may skip layers downwards, never point up; no cycles, not even type-only ones. Domains
 * import each other only along DOMAIN_IMPORTS below (a DAG: a new arrow is a design decision, made
 * here, in one line, where a reviewer sees it).
 */
const DOMAINS = [
  'backup',
  'capacity',
  'doctor',
  'images',
  'install',
  'maintenance',
  'migrate',
  'monitoring',
  'restore',
  'sandbox',
  'schedule',
  'service',
  'topology',
  'upgrade',
  'wal',
  'config/validate',
]

/** Which other domains each domain may import. */
const DOMAIN_IMPORTS = {
  backup: ['wal', 'service'],
  capacity: ['topology'],
  doctor: ['capacity', 'migrate', 'service', 'topology', 'config/validate'],
  images: ['service', 'topology'],
  install: ['schedule', 'topology'],
  maintenance: [],
  migrate: [],
  monitoring: ['capacity', 'schedule'],
  restore: ['backup', 'migrate', 'service', 'wal', 'sandbox', 'topology'],
  sandbox: ['install', 'migrate', 'service', 'wal'],
  schedule: [],
  service: [],
  // the stack's services, images, ports and health checks (issue 13): read by many, reads none
  topology: [],
  upgrade: ['backup', 'restore', 'migrate', 'service', 'sandbox', 'topology', 'config/validate'],
  wal: [],
  'config/validate': [],
}

const ADAPTERS = ['postgres', 'redis', 'chroma', 's3', 'repository', 'stack']
const any = (names) => `^src/(${names.join('|')})/`
const CORE = '^src/(core/|errors\\.ts$)'

const domainRules = Object.entries(DOMAIN_IMPORTS).map(([domain, allowed]) => {
  const others = DOMAINS.filter(
    (d) => d !== domain && !allowed.includes(d) && !(domain === 'config/validate' && d === 'config'),
  )
  return {
    name: `domain-${domain.replace('/', '-')}`,
    comment: `src/${domain} may import only these other domains: ${allowed.join(', ') || 'none'} (.dependency-cruiser.cjs DOMAIN_IMPORTS)`,
    severity: 'error',
    from: {path: `^src/${domain}/`},
    to: {path: any(others.map((d) => d.replace('/', '\\/')))},
  }
})

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle: split the shared part into a module both import',
      severity: 'error',
      from: {},
      to: {circular: true},
    },
    {
      name: 'core-imports-nothing-of-ours',
      comment: 'src/core is the bottom layer: it may import only itself, errors.ts and the one redactor',
      severity: 'error',
      from: {path: CORE},
      to: {path: '^src/', pathNot: `${CORE}|^src/output/redact\\.ts$`},
    },
    {
      name: 'output-imports-only-core',
      severity: 'error',
      from: {path: '^src/output/'},
      to: {path: '^src/', pathNot: `${CORE}|^src/output/`},
    },
    {
      name: 'settings-import-only-output-and-core',
      comment: 'src/config (settings, schemas, loaders) sits under the adapters; config/validate is a domain',
      severity: 'error',
      from: {path: '^src/config/', pathNot: '^src/config/validate/'},
      // topology's host facts and names (issue 13) are read while settings load
      to: {path: '^src/', pathNot: `${CORE}|^src/output/|^src/config/|^src/topology/(host|index)\\.ts$`},
    },
    {
      name: 'adapters-never-import-domains',
      severity: 'error',
      from: {path: any(ADAPTERS)},
      to: {path: '^src/', pathNot: `${CORE}|^src/output/|^src/config/(?!validate/)|${any(ADAPTERS)}`},
    },
    {
      name: 'src-never-imports-commands',
      severity: 'error',
      from: {path: '^src/'},
      to: {path: '^commands/'},
    },
    {
      name: 'only-commands-use-the-cli-layer',
      comment: 'src/cli is oclif glue for commands/; domains take plain arguments',
      severity: 'error',
      from: {path: '^src/', pathNot: '^src/cli/'},
      to: {path: '^src/cli/'},
    },
    {
      name: 'no-oclif-below-the-cli-layer',
      comment: "oclif belongs to commands/ and src/cli (plus the migrate commands' shared flags, src/migrate/cli.ts)",
      severity: 'error',
      from: {path: '^src/', pathNot: '^src/cli/|^src/migrate/cli\\.ts$'},
      to: {path: '@oclif/core'},
    },
    ...domainRules,
  ],
  options: {
    doNotFollow: {path: 'node_modules'},
    // type-only imports count: a type cycle is still a design cycle
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
  },
}
