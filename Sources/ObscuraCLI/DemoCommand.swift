import ArgumentParser
import TFHE

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End-to-end demo.")
    func run() throws {}
}
