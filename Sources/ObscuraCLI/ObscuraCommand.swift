import ArgumentParser

@main
struct Obscura: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "obscura",
        abstract: "Private neural-network inference on homomorphically encrypted data.",
        subcommands: [Demo.self, Serve.self, Worker.self, Admin.self, Keygen.self, Encrypt.self, Infer.self, Decrypt.self,
                      InferLocal.self, Bench.self, Models.self, Import.self, Train.self, Eval.self])
}
