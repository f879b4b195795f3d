import { describe, it, expect } from 'vitest'
import { httpListenOf } from '../../node/cli/commands/start.ts'

describe('--http-listen', () => {
  it('reads a host, a host and port, an IPv6 address in brackets, or off', () => {
    expect(httpListenOf(undefined, undefined)).toBeUndefined()
    expect(httpListenOf(undefined, '0')).toEqual({ host: '0.0.0.0', port: 0 })
    expect(httpListenOf('127.0.0.1:7780', undefined)).toEqual({ host: '127.0.0.1', port: 7780 })
    expect(httpListenOf('192.168.1.20', undefined)).toEqual({ host: '192.168.1.20' })
    expect(httpListenOf('[::1]:0', undefined)).toEqual({ host: '::1', port: 0 })
    expect(httpListenOf('node.local:80', undefined)).toEqual({ host: 'node.local', port: 80 })
    expect(httpListenOf('off', undefined)).toBe('off')
  })

  it('refuses anything else with the form it wants', () => {
    for (const bad of ['', ':80', 'every:where:80', '::1:80', '[::1', 'host:99999', 'host:-1', 'a b']) {
      expect(() => httpListenOf(bad, undefined), bad).toThrow(/--http-listen|--http-port|port number/)
    }
    expect(() => httpListenOf('127.0.0.1:80', '81')).toThrow(/not also --http-port/)
  })
})
