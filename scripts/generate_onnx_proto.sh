#!/usr/bin/env bash
# Regenerates Sources/ModelImport/Generated/onnx.pb.swift from ONNX's onnx.proto (committed: a
# build must not need protoc). Used: onnx 1.23.2's onnx/onnx.proto (proto2), protoc 3.21.12
# (Debian's protobuf-compiler), protoc-gen-swift 1.39.0 (the swift-protobuf version Package.swift pins).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pip download onnx==1.23.2 --no-deps -d "$work/wheel"
python3 -m zipfile -e "$work"/wheel/onnx-*.whl "$work/onnx"
mkdir -p "$work/plugin" && cat > "$work/plugin/Package.swift" <<'SWIFT'
// swift-tools-version: 5.9
import PackageDescription
let package = Package(name: "plugin", dependencies: [.package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0")],
                      targets: [.target(name: "Empty", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")])])
SWIFT
mkdir -p "$work/plugin/Sources/Empty" && touch "$work/plugin/Sources/Empty/Empty.swift"
(cd "$work/plugin" && swift build -c release --product protoc-gen-swift)
protoc --plugin=protoc-gen-swift="$work/plugin/.build/release/protoc-gen-swift" --swift_out=Sources/ModelImport/Generated \
    --swift_opt=Visibility=Internal -I "$work/onnx/onnx" "$work/onnx/onnx/onnx.proto"
