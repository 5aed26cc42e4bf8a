import ArgumentParser
@main struct Obscura: ParsableCommand { func run() {} }
