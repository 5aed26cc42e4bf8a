import ArgumentParser
import Foundation
import NeuralNet
import ObscuraServer
import Testing
@testable import ObscuraCLI

/// Parses and runs `obscura arguments…` in process, as the binary's `main` does; returns the
/// error it ended with, if any.
func runObscura(_ arguments: [String]) async -> (any Error)? {
    do {
        var command = try Obscura.parseAsRoot(arguments)
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
        return nil
    } catch {
        return error
    }
}

/// Bad input gets a clear error naming what is wrong and a non-zero exit; good input runs.
@Suite(.serialized)
struct CommandLineTests {
    /// A model file that is not one: truncated JSON.
    static let hostileModel = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-hostile-model-\(UInt64.random(in: 0...UInt64.max)).json").path

    static func writeHostileModel() throws {
        try Data(#"{"formatVersion": 2, "name": "x", "perceptron": {"weights": [1e15"#.utf8).write(to: URL(fileURLWithPath: hostileModel))
    }

    @Test("models and eval run on good input")
    func goodInput() async throws {
        #expect(await runObscura(["models"]) == nil)
        let bundled = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/NeuralNet/Resources/Models")
        for name in ["paper-perceptron-cancer", "cryptonets-mnist"] {
            let path = bundled.appendingPathComponent(name + ".json").path
            #expect(await runObscura(["models", "--file", path]) == nil, "\(name)")
            // What `models --file` lists: every variant of these models has a backend.
            let model = try ModelFile.load(path: path)
            for variant in ModelRegistry.variants(of: model) {
                #expect((try? ModelRegistry.entry(for: variant, model: model)) != nil, "\(variant)")
            }
        }
        #expect(ModelRegistry.variants(of: try ModelCatalog.load("cryptonets-mnist")).count == 4)
        #expect(await runObscura(["eval", "--model", "paper-perceptron-cancer", "--integer", "--json"]) == nil)
        // An ONNX network trained elsewhere: imported, written, and then described like any model file.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let imported = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-import-\(UInt64.random(in: 0...UInt64.max)).json").path
        defer { try? FileManager.default.removeItem(atPath: imported) }
        #expect(await runObscura(["import", repository.appendingPathComponent("examples/user-relu-cnn.onnx").path,
                                  "--calibration", repository.appendingPathComponent("../shared/data/mnist").standardized.path,
                                  "--calibration-records", "300", "--out", imported]) == nil)
        #expect(try ModelFile.load(path: imported).formatVersion == 3)
        #expect(await runObscura(["models", "--file", imported]) == nil)
    }

    @Test("bad input: unknown model, malformed server URL, missing key folder, out-of-range record or port: non-zero exit and a message naming it",
          arguments: [
            (["eval", "--model", "no-such-model"], "no-such-model"),
            (["infer", "--server", "not a url", "--model", "fast-mnist"], "--server"),
            (["encrypt", "--model", "fast-mnist", "--keys", "/nonexistent-folder"], "secret key"),
            (["encrypt", "--model", "fast-mnist", "--record", "99"], "--record 99"),
            (["serve", "--port", "70000"], "--port"),
            (["bench", "service", "--clients", "0"], "--clients"),
            (["serve", "--model", "cryptonets-mnist@sideways-bfv", "--data-dir", "/tmp/obscura-unused"], "cryptonets-mnist@sideways-bfv cannot be served"),
            (["models", "--file", "/nonexistent/model.json"], "/nonexistent/model.json"),
            (["models", "--file", CommandLineTests.hostileModel], "not valid JSON"),
            (["serve", "--no-auth", "--host", "0.0.0.0"], "--no-auth"),
            (["import", CommandLineTests.hostileModel, "--calibration", "../shared/data/mnist", "--out", "/tmp/obscura-unused.json"], "not a protobuf"),
            (["import", "/nonexistent/model.onnx", "--calibration", "../shared/data/mnist", "--out", "/tmp/obscura-unused.json"], "/nonexistent/model.onnx"),
          ])
    func badInput(arguments: [String], mentions: String) async throws {
        try Self.writeHostileModel()
        let error = try #require(await runObscura(arguments), "\(arguments) should fail")
        #expect(Obscura.exitCode(for: error) != .success, "\(arguments)")
        #expect(Obscura.fullMessage(for: error).contains(mentions), "\(arguments): \(Obscura.fullMessage(for: error))")
    }
}

extension CommandLineTests {
    @Test("keygen: the key folder is 0700 and secret.osk is created 0600 (never wider, even while written)")
    func keyFilePermissions() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-keygen-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let folder = root + "/keys"
        #expect(await runObscura(["keygen", "--model", "paper-perceptron-cancer", "--keys", folder]) == nil)
        let folderMode = try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int
        let secretMode = try FileManager.default.attributesOfItem(atPath: folder + "/secret.osk")[.posixPermissions] as? Int
        #expect(folderMode == 0o700)
        #expect(secretMode == 0o600)
        // A second keygen replaces the key and keeps the modes.
        #expect(await runObscura(["keygen", "--model", "paper-perceptron-cancer", "--keys", folder]) == nil)
        #expect(try FileManager.default.attributesOfItem(atPath: folder + "/secret.osk")[.posixPermissions] as? Int == 0o600)
        // A bare name, as in the README ("--keys my-keys"), is a folder in the working directory.
        let bare = "obscura-test-keys-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: bare) }
        try createPrivateDirectory(bare)
        #expect(try FileManager.default.attributesOfItem(atPath: bare)[.posixPermissions] as? Int == 0o700)
    }
}

extension CommandLineTests {
    @Test("admin: create-token stores a token (its hash only) that revoke-token revokes by id; listing a folder without server data, or revoking an unknown id, is an error naming it")
    func adminTokens() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-admin-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = try #require(await runObscura(["admin", "list-tokens", "--data-dir", directory]))
        #expect(Obscura.fullMessage(for: missing).contains("no server data in \(directory)"))

        // A token may come before the server's first start: create-token makes the folder.
        #expect(await runObscura(["admin", "create-token", "--data-dir", directory, "--name", "ci-client"]) == nil)
        let store = try ServiceStore(directory: directory)
        let token = try #require(try await store.tokens().first)
        #expect(token.name == "ci-client" && token.revokedAt == nil)
        #expect(await runObscura(["admin", "list-tokens", "--data-dir", directory]) == nil)
        #expect(await runObscura(["admin", "revoke-token", "--data-dir", directory, token.id, "--purge"]) == nil)
        #expect(try await store.tokens().first?.revokedAt != nil)
        let unknown = try #require(await runObscura(["admin", "revoke-token", "--data-dir", directory, "no-such-id"]))
        #expect(Obscura.fullMessage(for: unknown).contains("no token with id no-such-id"))
        // The database holds the token's SHA-256, never its text.
        let database = try #require(FileManager.default.contents(atPath: directory + "/obscura.sqlite"))
        #expect(database.range(of: Data("obscura_".utf8)) == nil)
    }
}
