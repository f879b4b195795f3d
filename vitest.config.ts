import { defineConfig } from 'vitest/config'

// Multi-node tests start real processes; two workers keep a 2-core machine responsive.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]]
  }
})
