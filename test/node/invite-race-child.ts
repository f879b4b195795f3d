// A separate process updating invites.json of the same home as others (see invite-race.test.ts).
// argv: <home dir> <role: consume | add | rotate> <invite ids, hex, comma-separated> <start at, ms>
import { Home, InviteBook } from '../../node/home/index.ts'

const [dir, role, ids, startAt] = process.argv.slice(2)
const book = new InviteBook(new Home(dir))
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
while (Date.now() < Number(startAt)) { /* start together with the others */ }
const out: Record<string, string> = {}
const list = ids.split(',')
for (let i = 0; i < list.length; i++) {
  const now = Date.now()
  if (role === 'consume') out[list[i]] = book.consume(hex(list[i]), now)
  else if (role === 'add') book.add({ id: hex(`ff${list[i].slice(2)}`), secret: new Uint8Array(32), createdAt: now, expiresAt: now + 3_600_000, usesLeft: 1 }, now)
  else if (role === 'rotate' && i >= 5) book.revokeAll()
}
process.stdout.write(JSON.stringify(out))
