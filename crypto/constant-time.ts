// Comparison of secrets (MACs, proofs) whose running time does not depend on where the inputs
// differ: an early-exit loop tells a timing attacker how many leading bytes of a guess were
// right, so a proof could be found byte by byte. Pure JavaScript so the browser gets it too.

/** True when a and b hold the same bytes; reads every byte whatever the first difference. */
export function constantTimeEqual (a: Uint8Array, b: Uint8Array): boolean {
  // the lengths of a MAC or proof are public; only their contents are secret
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i]
  return diff === 0
}
