#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch

/// The number of cores work may be spread over (`OBSCURA_THREADS` overrides it).
public enum ProcessInfoCores {
    /// Active processors, or the override.
    public static var active: Int {
        if let value = ProcessInfo.processInfo.environment["OBSCURA_THREADS"], let n = Int(value), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }
}

/// Independent iterations spread over the cores, with a limit a caller can scope: a benchmark
/// that reports one-thread figures runs its body under `ParallelWork.$threadLimit.withValue(1)`.
public enum ParallelWork {
    /// At most this many threads for work started in the current task; `nil`: all cores.
    @TaskLocal public static var threadLimit: Int?

    private static let cores = ProcessInfoCores.active

    /// The threads work started here may use.
    public static var threads: Int { Swift.max(1, threadLimit ?? cores) }

    /// Runs `body(i)` for every i in 0..<count, in parallel when more than one thread is allowed.
    /// The iterations must be independent (each writes only its own part of any output).
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || threads == 1 {
            for i in 0..<count { body(i) }
        } else {
            withoutActuallyEscaping(body) { body in
                let shared = UnsafeSendableBox(body)
                DispatchQueue.concurrentPerform(iterations: count) { shared.value($0) }
            }
        }
    }
}

extension ParallelWork {
    /// `body(i)` for i in 0..<count, in parallel when allowed, in index order.
    public static func map<T>(_ count: Int, _ body: (Int) throws -> T) rethrows -> [T] {
        var results = [Result<T, Error>?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { buffer in
            let out = UnsafeMutableSendablePointer(buffer.baseAddress!)
            forEach(count) { i in out.pointer[i] = Result { try body(i) } }
        }
        return try results.map { try $0!.get() }
    }
}

/// A value handed to `concurrentPerform` workers that only read it (or write disjoint parts).
@usableFromInline
struct UnsafeSendableBox<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}

/// A pointer that may cross into `concurrentPerform` workers, each of which writes a disjoint
/// range of it.
public struct UnsafeMutableSendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    public init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

/// A read-only pointer shared by `concurrentPerform` workers.
public struct UnsafeSendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafePointer<T>
    public init(_ pointer: UnsafePointer<T>) { self.pointer = pointer }
}
