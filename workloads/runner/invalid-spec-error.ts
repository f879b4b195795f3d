// A service or job spec the runner refuses before touching the machine. The instance id names
// cgroups and files, so it is held to a shape that cannot climb out of a directory.
export class InvalidSpecError extends Error {
  readonly name = 'InvalidSpecError'
  readonly field: string

  constructor (field: string, problem: string) {
    super(`${field} ${problem}`)
    this.field = field
  }
}

const INSTANCE_ID = /^[a-z0-9-]{1,80}$/

export function checkInstanceId (instanceId: string): void {
  if (typeof instanceId !== 'string' || !INSTANCE_ID.test(instanceId)) throw new InvalidSpecError('instanceId', `must match ${INSTANCE_ID.source}, got ${JSON.stringify(instanceId)}`)
}

export function checkPositive (field: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidSpecError(field, `must be a positive number, got ${String(value)}`)
}
