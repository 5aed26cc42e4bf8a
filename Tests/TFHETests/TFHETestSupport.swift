import ObscuraMath
import Testing
@testable import TFHE

/// Keys are expensive to make, so tests share them per parameter set and seed.
final class KeyCache: @unchecked Sendable {
    static let shared = KeyCache()
    private var entries: [String: (SecretKey, EvaluationKey)] = [:]
    private let lock = NSLockish()

    func keys(_ parameters: TFHEParameters, seed: UInt64 = 1) -> (SecretKey, EvaluationKey) {
        lock.withLock {
            let name = "\(parameters.id)/\(seed)"
            if let cached = entries[name] { return cached }
            let secret = SecretKey(parameters: parameters, deterministicSeed: Seed128(low: seed, high: UInt64(parameters.id)))
            let evaluation = EvaluationKey(secret.makeEvaluationKey(deterministicSeed: Seed128(low: seed, high: 99)))
            entries[name] = (secret, evaluation)
            return (secret, evaluation)
        }
    }
}

/// A minimal mutex on top of a Dispatch semaphore (available on every platform).
final class NSLockish: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 1)
    func withLock<T>(_ body: () -> T) -> T {
        semaphore.wait()
        defer { semaphore.signal() }
        return body()
    }
}

import Dispatch
