/// Wakes this process's idle workers when a job is stored, and tells them when to stop. The
/// jobs themselves wait in the store: a worker claims the oldest one under a lease
/// (``ServiceStore/claimNext(worker:leaseSeconds:)``), so that workers in other processes take
/// their share too, and looks again after a poll interval in case another process stored one.
actor WorkSignal {
    private var sleepers: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextSleeper = 0
    /// Wake-ups given while no worker slept: the next waits return at once.
    private var unclaimedWakeUps = 0
    private var closed = false
    /// Jobs this process is evaluating now.
    private(set) var running = 0

    /// A job was stored: one sleeping worker wakes (or the next to wait does not sleep).
    func notify() {
        if let (id, sleeper) = sleepers.first {
            sleepers[id] = nil
            sleeper.resume()
        } else {
            unclaimedWakeUps += 1
        }
    }

    /// Sleeps until ``notify()``, ``close()`` or `timeout`, whichever comes first.
    func wait(upTo timeout: Duration) async {
        if closed { return }
        if unclaimedWakeUps > 0 {
            unclaimedWakeUps -= 1
            return
        }
        let id = nextSleeper
        nextSleeper += 1
        let alarm = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.wake(id)
        }
        await withCheckedContinuation { sleepers[id] = $0 }
        alarm.cancel()
    }

    private func wake(_ id: Int) {
        sleepers.removeValue(forKey: id)?.resume()
    }

    /// A worker started or finished evaluating a job.
    func started() { running += 1 }
    func finished() { running -= 1 }

    /// Whether the server has stopped taking work.
    var isClosed: Bool { closed }

    /// Stops the workers: they finish the job in hand and take no other.
    func close() {
        closed = true
        for sleeper in sleepers.values { sleeper.resume() }
        sleepers.removeAll()
    }
}
