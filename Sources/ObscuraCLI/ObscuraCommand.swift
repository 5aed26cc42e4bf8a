import ArgumentParser

@main
struct Obscura: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "obscura",
        abstract: "Private neural-network inference on homomorphically encrypted data.",
        subcommands: [Demo.self, InferLocal.self, Bench.self, Models.self, Train.self, Eval.self])
}
