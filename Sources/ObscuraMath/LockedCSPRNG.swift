import Foundation

/// A ``CSPRNG`` for secret randomness that can be neither copied nor raced: a class, so every
/// holder shares the one stream (a copied generator state would replay masks and noise, and the
/// difference of two ciphertexts would reveal the difference of their plaintexts), drawn from
/// under a lock, so threads sharing it never read the same words.
public final class LockedCSPRNG: @unchecked Sendable {
    private var generator: CSPRNG
    private let lock = NSLock()

    /// Takes ownership of `generator`'s stream.
    public init(_ generator: CSPRNG) { self.generator = generator }

    /// `body` with exclusive use of the generator.
    public func draw<T>(_ body: (inout CSPRNG) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&generator)
    }

    /// A fresh 128-bit seed from the stream.
    public func seed() -> Seed128 { draw { Seed128(low: $0.next(), high: $0.next()) } }
}
