/// The bounded queue of accepted jobs. A slot is reserved before anything of a job is stored
/// and released when the job finishes, so the queue can never hold more than `capacity` jobs and
/// a refused submission leaves no trace. Workers wait in `next()`.
actor JobQueue {
    /// Jobs accepted and not yet finished, at most.
    let capacity: Int
    private var pending: [String] = []
    private var waitingWorkers: [CheckedContinuation<String?, Never>] = []
    private var reserved = 0
    private(set) var running = 0
    private var closed = false
    /// Totals of completed jobs since the server started, for the expected latencies of `/v1/models`.
    private(set) var bootstraps = 0
    private(set) var evaluationSeconds = 0.0

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Jobs waiting for a worker.
    var queued: Int { reserved - running }

    /// Takes a slot, or refuses when every slot is taken.
    func reserve() throws(APIError) {
        guard reserved < capacity else { throw .queueFull(capacity: capacity, retryAfter: 2) }
        reserved += 1
    }

    /// Takes a slot whatever the capacity: for jobs recovered after a restart, which were
    /// accepted before and must not be lost.
    func reserveRecovered() { reserved += 1 }

    /// Gives back a slot whose job was never enqueued.
    func cancelReservation() { reserved -= 1 }

    /// Hands a job (whose slot is reserved) to the next free worker.
    func enqueue(_ id: String) {
        if waitingWorkers.isEmpty {
            pending.append(id)
        } else {
            waitingWorkers.removeFirst().resume(returning: id)
        }
    }

    /// The next job to run; nil once the queue is closed.
    func next() async -> String? {
        if !pending.isEmpty { return pending.removeFirst() }
        if closed { return nil }
        return await withCheckedContinuation { waitingWorkers.append($0) }
    }

    /// A worker started a job.
    func started() { running += 1 }

    /// A worker finished a job; its slot is free again.
    func finished(succeeded: Bool, bootstraps: Int, seconds: Double) {
        running -= 1
        reserved -= 1
        if succeeded {
            self.bootstraps += bootstraps
            evaluationSeconds += seconds
        }
    }

    /// Whether the server has stopped taking work.
    var isClosed: Bool { closed }

    /// Stops handing out jobs; waiting workers get nil.
    func close() {
        closed = true
        for worker in waitingWorkers { worker.resume(returning: nil) }
        waitingWorkers.removeAll()
    }
}
