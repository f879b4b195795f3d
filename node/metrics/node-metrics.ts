// Prometheus metrics of one node, served by the admin API at GET /metrics.
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client'

export class NodeMetrics {
  readonly registry = new Registry()
  readonly peers: Gauge
  readonly connections: Gauge
  readonly gossipIn: Counter<'topic'>
  readonly gossipOut: Counter<'topic'>
  readonly rejectedConnections: Counter<'reason'>

  constructor () {
    collectDefaultMetrics({ register: this.registry, prefix: 'mycelium_process_' })
    this.peers = new Gauge({ name: 'mycelium_peers', help: 'Connected member peers', registers: [this.registry] })
    this.connections = new Gauge({ name: 'mycelium_connections', help: 'Open libp2p connections', registers: [this.registry] })
    this.gossipIn = new Counter({ name: 'mycelium_gossip_messages_in_total', help: 'Gossip messages received', labelNames: ['topic'], registers: [this.registry] })
    this.gossipOut = new Counter({ name: 'mycelium_gossip_messages_out_total', help: 'Gossip messages published', labelNames: ['topic'], registers: [this.registry] })
    this.rejectedConnections = new Counter({ name: 'mycelium_rejected_connections_total', help: 'Connections refused by the membership handshake', labelNames: ['reason'], registers: [this.registry] })
  }
}
