#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The number of cores work may be spread over (`OBSCURA_THREADS` overrides it).
public enum ProcessInfoCores {
    /// Active processors, or the override.
    public static var active: Int {
        if let value = ProcessInfo.processInfo.environment["OBSCURA_THREADS"], let n = Int(value), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }
}
