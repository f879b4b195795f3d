export class ApiError extends Error {
  readonly name = 'ApiError'
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

export class DaemonNotRunningError extends Error {
  readonly name = 'DaemonNotRunningError'
}
