// Renders the client's state into the page. Everything shown comes from the client; the
// view keeps no state of its own besides the user's filter inputs.
import type { HyphaeClient } from '../hyphae-client.ts'
import { HYPHAE_ROLE } from '../hyphae-client.ts'
import { renderGraph } from './graph-view.ts'

const $ = <T extends Element = HTMLElement>(selector: string): T => document.querySelector(selector) as T

function item (text: string, attrs: Record<string, string> = {}): HTMLLIElement {
  const li = document.createElement('li')
  li.textContent = text
  for (const [k, v] of Object.entries(attrs)) li.setAttribute(k, v)
  return li
}

function empty (text: string): HTMLLIElement {
  return item(text, { class: 'empty' })
}

const time = (at: number): string => new Date(at).toLocaleTimeString()
const tail = (peerId: string): string => `…${peerId.slice(-8)}`

export function renderPage (client: HyphaeClient): void {
  $('#network-name').textContent = client.networkName !== '' ? client.networkName : '—'
  $('#network-id').textContent = client.networkId
  $('#self-id').textContent = client.peerId
  $('#self-role').textContent = HYPHAE_ROLE
  const phase = client.phase
  const phaseEl = $('#phase')
  phaseEl.textContent = phase
  phaseEl.className = `phase ${phase}`
  $('#cert-expiry').textContent = client.certificateExpiresAt !== undefined ? `· certificate valid until ${new Date(client.certificateExpiresAt).toLocaleString()}` : ''
  const problem = $('#problem')
  problem.hidden = client.problem === ''
  problem.textContent = client.problem
  $('#join-panel').hidden = !client.canAskToJoin

  const links = client.links()
  const homes = client.homes?.homes() ?? []
  $('#homes').replaceChildren(...(homes.length === 0
    ? [empty('not connected to any sclerotium')]
    : homes.map(id => item(`${id}  via ${links.find(l => l.peerId === id)?.addrs.find(a => a.includes('/ws')) ?? ''}`, { 'data-peer': id }))))

  const rows = links
    .sort((a, b) => a.role.localeCompare(b.role) || a.peerId.localeCompare(b.peerId))
    .map((l) => {
      const tr = document.createElement('tr')
      tr.dataset.peer = l.peerId
      tr.dataset.role = l.role
      tr.dataset.link = l.kind
      for (const [cls, text] of [['peer', tail(l.peerId)], ['role', l.role], ['link', l.kind], ['addr', l.addrs.join('\n')]]) {
        const td = document.createElement('td')
        td.className = cls
        td.textContent = text
        if (cls === 'peer') td.title = l.peerId
        tr.append(td)
      }
      return tr
    })
  $('#peers tbody').replaceChildren(...rows)
  renderGraph($<SVGSVGElement>('#graph'), { peerId: client.peerId, role: HYPHAE_ROLE }, [...client.members.members.values()], links)

  const chat = client.chat
  $('#chat-topic').textContent = chat?.topic ?? ''
  $('#chat-subscribers').textContent = chat === undefined ? '' : `${chat.subscribers()} other subscriber${chat.subscribers() === 1 ? '' : 's'}`
  $('#chat-messages').replaceChildren(...(chat === undefined || chat.messages.length === 0
    ? [empty('no messages yet')]
    : chat.messages.map(m => item(`${time(m.at)} ${m.mine ? 'me' : tail(m.from)}: ${m.text}`, { class: m.mine ? 'mine' : '', 'data-from': m.from }))))
  const box = $('#chat-messages')
  box.scrollTop = box.scrollHeight

  renderSpores(client)
  const events = client.events.slice().reverse()
  $('#events').replaceChildren(...events.map(e => item(`${time(e.at)} ${e.text}`)))
}

function renderSpores (client: HyphaeClient): void {
  const feed = client.spores
  const typeSelect = $<HTMLSelectElement>('#spore-type')
  const filter = $<HTMLInputElement>('#spore-filter').value.trim().toLowerCase()
  const entries = feed === undefined ? [] : [...feed.entries.values()].reverse()
  const types = [...new Set(entries.map(e => e.type))].sort()
  for (const t of types) {
    if (!Array.from(typeSelect.options).some(o => o.value === t)) typeSelect.append(new Option(t, t))
  }
  const shown = entries
    .filter(e => typeSelect.value === '' || e.type === typeSelect.value)
    .filter(e => filter === '' || `${e.key} ${e.origin} ${JSON.stringify(e.value)}`.toLowerCase().includes(filter))
    .slice(0, 200)
  $('#spore-count').textContent = feed === undefined ? '' : `(${shown.length} of ${entries.length}${feed.rejected > 0 ? `, ${feed.rejected} rejected` : ''})`
  $('#spore-count').title = feed?.catchUpSource ?? ''
  $('#spores').replaceChildren(...(shown.length === 0
    ? [empty(entries.length === 0 ? `no latent entries received yet on ${feed?.topic ?? 'the latent topic'}` : 'no entry matches the filter')]
    : shown.map(e => item(`${e.type} ${e.key} seq ${e.seq} from ${tail(e.origin)}: ${JSON.stringify(e.value).slice(0, 160)}`, { 'data-type': e.type }))))
  const epochs = feed?.epochs.slice().reverse() ?? []
  $('#epoch-source').textContent = feed === undefined ? '' : `(${feed.epochSource})`
  $('#epochs').replaceChildren(...(epochs.length === 0
    ? [empty('no primary epoch received yet')]
    : epochs.map(e => item(`epoch ${e.epoch} · ${e.entries} entries · committee of ${e.committee} · digest ${e.digest} · ${time(e.issuedAt)}`))))
}
