import Synchronization

/// Bounds the uploads (keys and inputs) a server receives and checks at once. An upload is held
/// in memory once while it is parsed, and an RLWE key builds an evaluator of hundreds of MB, so
/// memory grows with the uploads in flight: with `capacity` slots it is bounded by `capacity`
/// times the largest accepted body. A request finding every slot taken is refused (503 with
/// Retry-After) before it reads anything.
final class UploadSlots: Sendable {
    let capacity: Int
    private let taken = Mutex(0)

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Runs `body` in a slot, or refuses at once when none is free.
    func withSlot<T>(_ body: () async throws -> T) async throws -> T {
        let acquired = taken.withLock { count in
            guard count < capacity else { return false }
            count += 1
            return true
        }
        guard acquired else {
            throw APIError(status: .serviceUnavailable, code: "uploads_busy",
                           message: "the server is receiving its limit of \(capacity) uploads at once; retry after 1 s", retryAfter: 1)
        }
        defer { taken.withLock { $0 -= 1 } }
        return try await body()
    }
}
