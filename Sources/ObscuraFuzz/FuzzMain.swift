import Foundation
import FuzzTargets

// Two builds of one file. With `-sanitize=fuzzer,address -DOBSCURA_FUZZ` (scripts/fuzz.sh)
// `main` hands the command line to libFuzzer's driver, which calls `fuzzOneInput` with inputs
// for the target named by OBSCURA_FUZZ_TARGET. In the ordinary build, `main` writes the seed
// corpus or replays inputs.

#if OBSCURA_FUZZ
import CFuzzerDriver

private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["OBSCURA_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set OBSCURA_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

private func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

// An explicit driver call rather than libFuzzer's own `main`: SwiftPM links an executable's
// `main` to its module's entry point, which this build must therefore define.
@main
struct FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { fuzzOneInput($0, $1) })
    }
}
#else
@main
struct FuzzMain {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        switch (arguments.first, arguments.count) {
        case ("seed", 2):
            // obscura-fuzz seed DIR: DIR/<target>/seed-<n> for every target.
            let root = URL(fileURLWithPath: arguments.last!)
            for target in FuzzTarget.allCases {
                let folder = root.appendingPathComponent(target.rawValue)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for (index, seed) in try target.seeds().enumerated() {
                    try Data(seed).write(to: folder.appendingPathComponent("seed-\(index)"))
                }
                print("\(target.rawValue): \(try FileManager.default.contentsOfDirectory(atPath: folder.path).count) files")
            }
        case ("replay", 2...):
            // obscura-fuzz replay TARGET FILE...: runs each file once (a crash reproduces here).
            guard let target = FuzzTarget(rawValue: String(arguments.dropFirst().first!)) else {
                throw FuzzUsage.unknownTarget(String(arguments.dropFirst().first!))
            }
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else { throw FuzzUsage.unreadable(path) }
                target.run([UInt8](data))
            }
            print("\(target.rawValue): \(arguments.count - 2) inputs, no crash")
        default:
            throw FuzzUsage.usage
        }
    }
}

enum FuzzUsage: Error, CustomStringConvertible {
    case usage, unknownTarget(String), unreadable(String)

    var description: String {
        switch self {
        case .usage: "usage: obscura-fuzz seed DIR | obscura-fuzz replay TARGET FILE... (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownTarget(let name): "unknown target \(name); targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))"
        case .unreadable(let path): "cannot read \(path)"
        }
    }
}
#endif
