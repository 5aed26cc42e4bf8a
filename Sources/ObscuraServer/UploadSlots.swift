import Synchronization

/// Bounds the uploads (keys and inputs) a server receives and checks at once, in all and per
/// owner. An upload is held in memory once while it is parsed, and an RLWE key builds an
/// evaluator of hundreds of MB, so memory grows with the uploads in flight: with `capacity`
/// slots it is bounded by `capacity` times the largest accepted body, and one token cannot take
/// more than `perOwner` of them from the others. A request finding no slot is refused (503 with
/// Retry-After, and its connection closed) before its body is read.
final class UploadSlots: Sendable {
    let capacity: Int
    let perOwner: Int
    private let taken = Mutex((total: 0, byOwner: [Owner: Int]()))

    init(capacity: Int, perOwner: Int) {
        self.capacity = max(1, capacity)
        self.perOwner = max(1, perOwner)
    }

    /// Runs `body` in one of `owner`'s slots, or refuses at once when none is free.
    func withSlot<T>(for owner: Owner, _ body: () async throws -> T) async throws -> T {
        let refusal: String? = taken.withLock { state in
            if state.total >= capacity { return "the server is receiving its limit of \(capacity) uploads at once" }
            if state.byOwner[owner, default: 0] >= perOwner { return "you are sending \(perOwner) uploads at once, the most allowed" }
            state.total += 1
            state.byOwner[owner, default: 0] += 1
            return nil
        }
        if let refusal {
            throw APIError(status: .serviceUnavailable, code: APIError.uploadsBusy, message: refusal + "; retry after 1 s", retryAfter: 1)
        }
        defer {
            taken.withLock { state in
                state.total -= 1
                state.byOwner[owner, default: 1] -= 1
                if state.byOwner[owner] == 0 { state.byOwner[owner] = nil }
            }
        }
        return try await body()
    }
}
