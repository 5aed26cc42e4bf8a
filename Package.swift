// swift-tools-version: 6.1
import PackageDescription

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The hot loops (FFT, external product, key switching) are written with `SIMD4<Double>`.
/// On an x86-64 host that has AVX2 and FMA we let the compiler use them; anything else (or
/// `OBSCURA_PORTABLE=1`) gets the portable baseline, which is correct but slower.
let nativeVectorFlags: [SwiftSetting] = {
    #if os(Linux) && arch(x86_64)
    let environment = ProcessInfo.processInfo.environment
    if environment["OBSCURA_PORTABLE"] == "1" { return [] }
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    let names = Set(flags.split(separator: " ").map(String.init))
    guard names.isSuperset(of: ["avx2", "fma", "bmi2"]) else { return [] }
    return [.unsafeFlags(["-target-cpu", "haswell"])]
    #else
    return []
    #endif
}()

let package = Package(
    name: "Obscura",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "ObscuraMath", targets: ["ObscuraMath"]),
        .library(name: "TFHE", targets: ["TFHE"]),
        .library(name: "RLWE", targets: ["RLWE"]),
        .library(name: "CipherCircuits", targets: ["CipherCircuits"]),
        .library(name: "NeuralNet", targets: ["NeuralNet"]),
        .library(name: "PrivateInference", targets: ["PrivateInference"]),
        .library(name: "SIMDInference", targets: ["SIMDInference"]),
        .library(name: "ModelImport", targets: ["ModelImport"]),
        .library(name: "ObscuraAPI", targets: ["ObscuraAPI"]),
        .library(name: "ObscuraClient", targets: ["ObscuraClient"]),
        .library(name: "ObscuraServer", targets: ["ObscuraServer"]),
        .executable(name: "obscura", targets: ["ObscuraCLI"]),
        .executable(name: "obscura-fuzz", targets: ["ObscuraFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", exact: "2.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        .target(
            name: "ObscuraMath",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "TFHE",
            dependencies: ["ObscuraMath"],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "RLWE",
            dependencies: ["ObscuraMath", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "CipherCircuits",
            dependencies: ["TFHE"],
            swiftSettings: nativeVectorFlags),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .target(
            name: "NeuralNet",
            dependencies: ["CZlib"],
            resources: [.copy("Resources/Models"), .copy("Resources/Samples")],
            swiftSettings: nativeVectorFlags),
        // The client and server halves every backend implements, and the one pipeline over them.
        .target(name: "InferenceBackend"),
        .target(
            name: "PrivateInference",
            dependencies: ["TFHE", "CipherCircuits", "NeuralNet", "InferenceBackend"],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "SIMDInference",
            dependencies: ["RLWE", "NeuralNet", "ObscuraMath", "InferenceBackend"],
            swiftSettings: nativeVectorFlags),
        // ONNX import: Generated/onnx.pb.swift comes from ONNX's onnx.proto (scripts/generate_onnx_proto.sh).
        .target(
            name: "ModelImport",
            dependencies: ["NeuralNet", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "ObscuraAPI"),
        .target(
            name: "ObscuraClient",
            dependencies: ["ObscuraAPI", "InferenceBackend", "PrivateInference", "SIMDInference", "RLWE"],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "ObscuraServer",
            dependencies: [
                "ObscuraAPI",
                "InferenceBackend",
                "PrivateInference",
                "SIMDInference",
                "RLWE",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("openapi.json")],
            swiftSettings: nativeVectorFlags),
        .executableTarget(
            name: "ObscuraCLI",
            dependencies: [
                "InferenceBackend",
                "TFHE",
                "RLWE",
                "CipherCircuits",
                "NeuralNet",
                "ModelImport",
                "PrivateInference",
                "SIMDInference",
                "ObscuraAPI",
                "ObscuraClient",
                "ObscuraServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: nativeVectorFlags),
        .target(
            name: "FuzzTargets",
            dependencies: ["TFHE", "RLWE", "NeuralNet", "ModelImport", "PrivateInference", "SIMDInference"],
            swiftSettings: nativeVectorFlags),
        .target(name: "CFuzzerDriver"),
        .executableTarget(name: "ObscuraFuzz", dependencies: ["FuzzTargets", "CFuzzerDriver"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "ObscuraMathTests", dependencies: ["ObscuraMath"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "RLWETests", dependencies: ["RLWE"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "TFHETests", dependencies: ["TFHE"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "CipherCircuitsTests", dependencies: ["CipherCircuits"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "ModelImportTests", dependencies: ["ModelImport", "InferenceBackend", "SIMDInference", "PrivateInference", "TFHE"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "SIMDInferenceTests", dependencies: ["SIMDInference"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "PrivateInferenceTests", dependencies: ["PrivateInference", "CipherCircuits", "InferenceBackend"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "ObscuraServerTests", dependencies: ["ObscuraServer", "ObscuraClient", "ModelImport"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"], swiftSettings: nativeVectorFlags),
        .testTarget(name: "ObscuraCLITests", dependencies: ["ObscuraCLI", "ObscuraServer", "NeuralNet"], swiftSettings: nativeVectorFlags),
    ],
    swiftLanguageModes: [.v6]
)
