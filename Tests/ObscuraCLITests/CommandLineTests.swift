import ArgumentParser
import Foundation
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
    @Test("models and eval run on good input")
    func goodInput() async {
        #expect(await runObscura(["models"]) == nil)
        #expect(await runObscura(["eval", "--model", "paper-perceptron-cancer", "--integer", "--json"]) == nil)
    }

    @Test("bad input: unknown model, malformed server URL, missing key folder, out-of-range record or port: non-zero exit and a message naming it",
          arguments: [
            (["eval", "--model", "no-such-model"], "no-such-model"),
            (["infer", "--server", "not a url", "--model", "fast-mnist"], "--server"),
            (["encrypt", "--model", "fast-mnist", "--keys", "/nonexistent-folder"], "secret key"),
            (["encrypt", "--model", "fast-mnist", "--record", "99"], "--record 99"),
            (["serve", "--port", "70000"], "--port"),
            (["bench", "service", "--clients", "0"], "--clients"),
            (["serve", "--model", "cryptonets-mnist@latency-ckks", "--data-dir", "/tmp/obscura-unused"], "cryptonets-mnist@latency-ckks cannot be served"),
          ])
    func badInput(arguments: [String], mentions: String) async throws {
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
