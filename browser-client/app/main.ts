// The page's entry point: takes the invite from the URL (and removes it, it is single-use),
// starts the client, and re-renders whenever the client changes, at most a few times a second.
import { HyphaeClient } from './hyphae-client.ts'
import { renderPage } from './view/page-view.ts'
import { requestToJoin } from './join-request.ts'

const client = new HyphaeClient(window.localStorage)
const hash = new URLSearchParams(window.location.hash.slice(1))
const invite = hash.get('invite') ?? undefined
if (invite !== undefined) history.replaceState(null, '', window.location.pathname + window.location.search)

let scheduled = false
const render = (): void => {
  if (scheduled) return
  scheduled = true
  setTimeout(() => { scheduled = false; renderPage(client) }, 150)
}
client.addEventListener('change', render)
setInterval(render, 1_000)

document.querySelector('#chat-form')!.addEventListener('submit', (evt) => {
  evt.preventDefault()
  const input = document.querySelector<HTMLInputElement>('#chat-input')!
  const text = input.value.trim()
  if (text === '') return
  input.value = ''
  client.send(text).catch((err: Error) => { client.note(`message not sent: ${err.message}`) })
})
document.querySelector('#ask-join')!.addEventListener('click', () => {
  const button = document.querySelector<HTMLButtonElement>('#ask-join')!
  const status = document.querySelector('#join-status')!
  button.disabled = true
  status.textContent = 'asking…'
  requestToJoin(client.peerId, async (data) => await client.sign(data), (code) => {
    status.innerHTML = 'waiting for approval: code <b id="join-code"></b> — the operator runs <code></code>'
    status.querySelector('#join-code')!.textContent = code
    status.querySelector('code')!.textContent = `mycelium network approve ${code}`
  }, AbortSignal.timeout(15 * 60_000))
    .then(async (invite) => { await client.joinWith(invite) })
    .catch((err: Error) => {
      status.textContent = `not admitted: ${err.message}`
      button.disabled = false
    })
})
document.querySelector('#spore-filter')!.addEventListener('input', render)
document.querySelector('#spore-type')!.addEventListener('change', render)

client.start(invite).catch((err: Error) => {
  client.problem = `the client could not start: ${err.message}`
  render()
})
