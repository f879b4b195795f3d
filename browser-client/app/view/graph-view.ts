// The network as a live SVG graph: this page in the middle, sclerotia on the inner ring, every
// other member on the outer ring; lines are connections reported by rosters or held by the page.
import type { Member } from '../member-map.ts'
import type { PeerLink } from '../hyphae-client.ts'

const SVG = 'http://www.w3.org/2000/svg'

function el (name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const node = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  if (text !== undefined) node.textContent = text
  return node
}

const label = (peerId: string): string => peerId.slice(-6)

export function renderGraph (svg: SVGSVGElement, self: { peerId: string, role: string }, members: Member[], links: PeerLink[]): void {
  const others = members.filter(m => m.peerId !== self.peerId)
  const inner = others.filter(m => m.role === 'sclerotium').sort((a, b) => a.peerId.localeCompare(b.peerId))
  const outer = others.filter(m => m.role !== 'sclerotium').sort((a, b) => a.peerId.localeCompare(b.peerId))
  const at = new Map<string, { x: number, y: number }>([[self.peerId, { x: 0, y: 0 }]])
  inner.forEach((m, i) => { const a = -Math.PI / 2 + 2 * Math.PI * i / inner.length; at.set(m.peerId, { x: 95 * Math.cos(a), y: 95 * Math.sin(a) }) })
  outer.forEach((m, i) => { const a = -Math.PI / 2 + Math.PI / Math.max(1, outer.length) + 2 * Math.PI * i / outer.length; at.set(m.peerId, { x: 175 * Math.cos(a), y: 130 * Math.sin(a) }) })

  const edges = new Map<string, string>()
  const edge = (a: string, b: string, kind: string): void => {
    if (!at.has(a) || !at.has(b) || a === b) return
    const key = a < b ? `${a} ${b}` : `${b} ${a}`
    if (kind === 'webrtc' || !edges.has(key)) edges.set(key, kind)
  }
  for (const m of others) for (const to of m.links) edge(m.peerId, to, 'roster')
  for (const l of links) if (l.kind !== 'none') edge(self.peerId, l.peerId, l.kind === 'webrtc' ? 'webrtc' : 'self')

  svg.replaceChildren()
  for (const [key, kind] of edges) {
    const [a, b] = key.split(' ')
    const p = at.get(a)!
    const q = at.get(b)!
    svg.append(el('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: kind }))
  }
  const node = (peerId: string, role: string, isSelf: boolean): void => {
    const p = at.get(peerId)!
    const g = el('g', { 'data-peer': peerId, 'data-role': role })
    g.append(el('circle', { cx: p.x, cy: p.y, r: isSelf ? 16 : role === 'sclerotium' ? 14 : 11, class: `${role} ${isSelf ? 'self' : ''}` }))
    g.append(el('text', { x: p.x, y: p.y + (isSelf ? 30 : 26) }, `${isSelf ? 'this page' : label(peerId)} · ${role}`))
    svg.append(g)
  }
  for (const m of others) node(m.peerId, m.role, false)
  node(self.peerId, self.role, true)
}
